"""The only places surefoot touches another library's undocumented behaviour.

One module per library. Each function uses the library's internals only where the public API
cannot do the job, checks what it relies on, and falls back to a public-API path when the
check fails, so an upgrade that changes the internals costs speed or placement, never
correctness. ``tests/unit/test_compat.py`` runs each of them against the installed versions.
"""
