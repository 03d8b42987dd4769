"""surefoot's core: what every capability builds on. It imports nothing of surefoot above it.

- :mod:`.state`: the one process state object and ``reset_all()``;
- :mod:`.settings`: ``Settings``, every settings section resolved once, one-line errors;
- :mod:`.clock`: the injected clock protocol;
- :mod:`.problem`: the RFC 9457 problem renderer every error body goes through;
- :mod:`.catalogue`: every metric surefoot exports (name, type, labels, buckets);
- :mod:`.signing`: HMAC signature schemes shared by the webhook inbox and the HTTP sink;
- :mod:`.retry_after`: the one ``Retry-After`` parser;
- :mod:`.backoff`: the one backoff protocol and its jitter families;
- :mod:`.callables`: the one way to tell and wrap sync, async and generator callables;
- :mod:`.extras`: lazy imports of optional backends, naming the extra to install;

The public modules :mod:`surefoot.errors` and :mod:`surefoot.context` belong to this layer
too. Nothing here is imported eagerly: each module is imported where it is used.
"""
