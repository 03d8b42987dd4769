"""One way for every resilience component to tell callables apart and to refuse misuse.

Each component has a sync entry point (``call``), an async one (``acall``) and a decorator.
The decorator dispatches on :func:`callable_kind` (functions, coroutine functions, generator
functions and async generator functions; also ``functools.partial`` objects and instances
whose ``__call__`` is one of these). A sync entry point that is handed an async callable would
return a coroutine that has not run yet, so the component could not guard it: instead it
raises :class:`UnsupportedCallableError` naming the async form (``await breaker.acall(fn)``).
The check is made on the value the callable returned (one type test on the success path), so
a sync lambda returning a coroutine is caught too, and the coroutine is closed (no "never
awaited" warning).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import types
from collections.abc import Callable
from typing import Any, Final, NoReturn, Protocol, TypeVar

from ..errors import ConfigurationError

__all__ = [
    "FUNCTION",
    "COROUTINE",
    "GENERATOR",
    "ASYNC_GENERATOR",
    "UnsupportedCallableError",
    "callable_kind",
    "DEFERRED_TYPES",
    "refuse_deferred",
    "refuse_kind",
    "describe",
    "around_generator",
    "around_async_generator",
    "AsyncGeneratorHooks",
    "guard_async_generator",
    "is_sync_function",
    "refuse_call",
    "wrap_callable",
    "through",
    "athrough",
]

_R = TypeVar("_R")

FUNCTION: Final = "function"
COROUTINE: Final = "coroutine function"
GENERATOR: Final = "generator function"
ASYNC_GENERATOR: Final = "async generator function"

#: Values a sync call may not return: their work runs after the call returned, out of reach.
DEFERRED_TYPES: frozenset[type] = frozenset(
    {types.CoroutineType, types.AsyncGeneratorType, types.GeneratorType, asyncio.Future, asyncio.Task}
)


class UnsupportedCallableError(ConfigurationError, TypeError):
    """A resilience component was given a callable it cannot guard in that form.

    Raised by a sync entry point (``call``, a sync decorator) handed an async callable, and by
    decorators that do not support generator functions. The message names the form to use.
    """


def callable_kind(fn: Any) -> str:
    """``FUNCTION``, ``COROUTINE``, ``GENERATOR`` or ``ASYNC_GENERATOR`` for ``fn``.

    ``functools.partial`` objects, bound methods and ``functools.wraps`` wrappers are looked
    through by :mod:`inspect`; an instance counts as the kind of its ``__call__``.
    """
    for target in (fn, _call_method(fn)):
        if target is None:
            continue
        if inspect.isasyncgenfunction(target):
            return ASYNC_GENERATOR
        if inspect.iscoroutinefunction(target):
            return COROUTINE
        if inspect.isgeneratorfunction(target):
            return GENERATOR
    return FUNCTION


def _call_method(fn: Any) -> Any:
    if inspect.isroutine(fn) or isinstance(fn, (type, functools.partial)):
        return None
    call = getattr(fn, "__call__", None)  # noqa: B004 - the bound __call__ of an instance
    return call if inspect.ismethod(call) else None


def describe(fn: Any) -> str:
    """A short name for ``fn`` in error messages."""
    return getattr(fn, "__qualname__", None) or type(fn).__qualname__


def refuse_deferred(result: Any, owner: str, var: str, *, generators: bool = True) -> NoReturn:
    """Raise :class:`UnsupportedCallableError` for a coroutine/generator a sync call returned.

    Args:
        result: what the callable returned (a coroutine is closed first).
        owner: the component class, e.g. ``"CircuitBreaker"``.
        var: how code usually names an instance, e.g. ``"breaker"``.
        generators: whether the component's decorator protects a whole (async) iteration.
    """
    kind = type(result)
    if kind is types.CoroutineType or kind is types.GeneratorType:
        result.close()
    if kind is types.CoroutineType or isinstance(result, asyncio.Future):
        what = "a coroutine" if kind is types.CoroutineType else "an asyncio future"
        raise UnsupportedCallableError(
            f"{owner}.call() got {what} from an async callable: it has not run yet, so {owner} "
            f"cannot guard it. Use `await {var}.acall(fn, ...)`, or decorate the async function "
            f"with `@{var}`."
        )
    form = "an async generator" if kind is types.AsyncGeneratorType else "a generator"
    hint = (
        f"decorate the generator function with `@{var}`, which protects the whole iteration"
        if generators
        else "wrap the call that produces the items instead"
    )
    raise UnsupportedCallableError(
        f"{owner}.call() got {form}: its work runs while it is iterated, after the call "
        f"returned, so {owner} cannot guard it; {hint}."
    )


def refuse_kind(fn: Any, owner: str, var: str, kind: str, advice: str) -> NoReturn:
    """Raise :class:`UnsupportedCallableError` for a decorator that does not support ``kind``."""
    raise UnsupportedCallableError(
        f"{owner} cannot decorate the {kind} {describe(fn)}: {advice}"
    )


def guard_sync(owner: str, var: str, *, generators: bool = True) -> Callable[[_R], _R]:
    """A function returning its argument, refusing deferred values (for the slow paths)."""

    def check(result: _R) -> _R:
        if type(result) in DEFERRED_TYPES:
            refuse_deferred(result, owner, var, generators=generators)
        return result

    return check


def around_generator(fn: Callable[..., Any], enter: Callable[[], Any], exit_: Callable[[], Any]) -> Callable[..., Any]:
    """A generator function running ``fn``'s whole iteration between ``enter()`` and ``exit_()``.

    ``enter`` runs when iteration starts (the first ``next()``), ``exit_`` when it ends for any
    reason: exhausted, raised, closed early or garbage-collected. ``send`` and ``throw`` reach
    ``fn``'s generator unchanged.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        enter()
        try:
            return (yield from fn(*args, **kwargs))
        finally:
            exit_()

    return wrapper


class AsyncGeneratorHooks(Protocol):
    """What :func:`guard_async_generator` calls around one iteration (a new object per call)."""

    async def start(self) -> None:
        """Before the first item (iteration started); raising stops it before ``fn`` runs."""

    async def success(self) -> None:
        """The generator was exhausted (or returned)."""

    async def error(self, exc: BaseException) -> None:
        """The generator raised ``exc`` (also a thrown-in exception it did not handle)."""

    async def closed(self) -> None:
        """Closed early by its consumer (``aclose()``, ``break`` or garbage collection)."""


def guard_async_generator(
    fn: Callable[..., Any], hooks: Callable[[], AsyncGeneratorHooks]
) -> Callable[..., Any]:
    """An async generator function running ``fn``'s whole iteration inside ``hooks()``'s calls.

    Python has no ``yield from`` for async generators: this is the one place that drives one by
    hand, passing ``asend`` and ``athrow`` through to ``fn``'s generator and closing it when the
    consumer closes the wrapper. Exactly one of ``success``, ``error`` and ``closed`` follows a
    ``start`` that returned.
    """

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        guard = hooks()
        await guard.start()
        ended = False  # an outcome hook was called: nothing below may call another
        try:
            agen = fn(*args, **kwargs)
            try:
                value = await agen.__anext__()
            except StopAsyncIteration:
                ended = True
                await guard.success()
                return
            while True:
                try:
                    sent = yield value
                except GeneratorExit:
                    ended = True
                    try:
                        await agen.aclose()
                    except BaseException as exc:  # it failed while closing: that is its outcome
                        await guard.error(exc)
                        raise
                    await guard.closed()
                    raise
                except BaseException as thrown:
                    try:
                        value = await agen.athrow(thrown)
                    except StopAsyncIteration:
                        ended = True
                        await guard.success()
                        return
                else:
                    try:
                        value = await agen.asend(sent)
                    except StopAsyncIteration:
                        ended = True
                        await guard.success()
                        return
        except BaseException as exc:
            if not ended:
                await guard.error(exc)
            raise

    return wrapper


class _EnterExit:
    """Hooks for :func:`around_async_generator`: ``enter`` awaited first, ``exit_`` at any end."""

    __slots__ = ("_enter", "_exit")

    def __init__(self, enter: Callable[[], Any], exit_: Callable[[], Any]) -> None:
        self._enter = enter
        self._exit = exit_

    async def start(self) -> None:
        await self._enter()

    async def success(self) -> None:
        self._exit()

    async def error(self, exc: BaseException) -> None:
        self._exit()

    async def closed(self) -> None:
        self._exit()


def around_async_generator(
    fn: Callable[..., Any], enter: Callable[[], Any], exit_: Callable[[], Any]
) -> Callable[..., Any]:
    """The async twin of :func:`around_generator` (``enter`` is awaited; ``asend``/``athrow`` pass through)."""
    return guard_async_generator(fn, lambda: _EnterExit(enter, exit_))


_NOT_SYNC = inspect.CO_COROUTINE | inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE


def is_sync_function(fn: Any) -> bool:
    """``callable_kind(fn) == FUNCTION``, with a fast path for plain functions and methods."""
    kind = type(fn)
    if kind is types.FunctionType:
        return not fn.__code__.co_flags & _NOT_SYNC
    if kind is types.MethodType and type(fn.__func__) is types.FunctionType:
        return not fn.__func__.__code__.co_flags & _NOT_SYNC
    return callable_kind(fn) is FUNCTION


def refuse_call(fn: Any, owner: str, var: str, *, generators: bool = True) -> NoReturn:
    """Raise :class:`UnsupportedCallableError` for a sync ``call`` handed a non-sync callable."""
    kind = callable_kind(fn)
    if kind is COROUTINE:
        raise UnsupportedCallableError(
            f"{owner}.call() got the coroutine function {describe(fn)}: a sync call cannot guard it. "
            f"Use `await {var}.acall(fn, ...)`, or decorate the async function with `@{var}`."
        )
    hint = (
        f"decorate the generator function with `@{var}`, which protects the whole iteration"
        if generators
        else "wrap the call that produces the items instead"
    )
    raise UnsupportedCallableError(
        f"{owner}.call() got the {kind} {describe(fn)}: its work runs while it is iterated, after "
        f"the call returned, so {owner} cannot guard it; {hint}."
    )


Factory = Callable[[Callable[..., Any]], Callable[..., Any]]


def wrap_callable(
    fn: Callable[..., Any],
    *,
    owner: str,
    var: str,
    function: Factory,
    coroutine: Factory,
    generator: Factory | None = None,
    async_generator: Factory | None = None,
    refusal: str = "wrap the call that produces the items instead",
    attribute: str | None = None,
    component: Any = None,
) -> Callable[..., Any]:
    """The one way every resilience decorator wraps a callable.

    ``fn``'s kind (:func:`callable_kind`) picks the factory building the wrapper; a kind without
    a factory is refused with :class:`UnsupportedCallableError` (``refusal`` says what to do
    instead). The wrapper gets ``fn``'s name and docstring (``functools.update_wrapper``) and,
    with ``attribute``, ``component`` as that attribute (``wrapper.breaker``, ...).
    """
    kind = callable_kind(fn)
    factory = {FUNCTION: function, COROUTINE: coroutine, GENERATOR: generator, ASYNC_GENERATOR: async_generator}[kind]
    if factory is None:
        refuse_kind(fn, owner, var, kind, refusal)
    wrapper = factory(fn)
    if getattr(wrapper, "__wrapped__", None) is not fn:
        functools.update_wrapper(wrapper, fn)
    if attribute is not None:
        setattr(wrapper, attribute, component)
    return wrapper


def through(call: Callable[..., Any]) -> Factory:
    """A factory of sync wrappers running ``call(fn, *args, **kwargs)``."""

    def factory(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return call(fn, *args, **kwargs)

        return wrapper

    return factory


def athrough(acall: Callable[..., Any]) -> Factory:
    """A factory of async wrappers awaiting ``acall(fn, *args, **kwargs)``."""

    def factory(fn: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await acall(fn, *args, **kwargs)

        return wrapper

    return factory
