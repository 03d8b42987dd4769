"""The request path: one pure-ASGI middleware and RFC 9457 error envelopes.

    from surefoot.http import install_http
    install_http(app)                     # FastAPI or Starlette

    app = SurefootMiddleware(any_asgi_app)  # any other ASGI app
"""

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
