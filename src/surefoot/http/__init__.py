"""The request path: one pure-ASGI middleware and RFC 9457 error envelopes.

    from surefoot.http import install_http
    install_http(app)                     # FastAPI or Starlette

    app = SurefootMiddleware(any_asgi_app)  # any other ASGI app
"""

from typing import TYPE_CHECKING

from .._core.extras import lazy_exports

__all__ = [
    "SurefootMiddleware",
    "install_http",
    "install_error_handlers",
    "exception_handlers",
    "PROBLEM_CONTENT_TYPE",
    "Problem",
    "problem_from_exception",
    "problem_from_status",
    "problem_response",
    "send_problem",
    "code_for_status",
    "problem_openapi",
    "problem_responses",
    "PROBLEM_SCHEMA",
]

# Each name is imported from its module on first use.
_LAZY = {
    "PROBLEM_CONTENT_TYPE": ".._core.problem",
    "Problem": ".._core.problem",
    "code_for_status": ".._core.problem",
    "problem_from_exception": ".._core.problem",
    "problem_from_status": ".._core.problem",
    "problem_response": ".._core.problem",
    "send_problem": ".._core.problem",
    "exception_handlers": "._install",
    "install_error_handlers": "._install",
    "install_http": "._install",
    "SurefootMiddleware": "._middleware",
    "PROBLEM_SCHEMA": "._openapi",
    "problem_openapi": "._openapi",
    "problem_responses": "._openapi",
}
__getattr__, __dir__ = lazy_exports(globals(), _LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from .._core.problem import (
        PROBLEM_CONTENT_TYPE,
        Problem,
        code_for_status,
        problem_from_exception,
        problem_from_status,
        problem_response,
        send_problem,
    )
    from ._install import exception_handlers, install_error_handlers, install_http
    from ._middleware import SurefootMiddleware
    from ._openapi import PROBLEM_SCHEMA, problem_openapi, problem_responses
