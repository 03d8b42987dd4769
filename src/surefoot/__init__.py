"""surefoot: make an ASGI service production-grade in one call.

    import surefoot
    surefoot.install(app)
"""

from ._core.settings import Settings, configure, get_settings
from ._install import Installation, install
from .errors import (
    AuthenticationError,
    AuthorizationError,
    ConfigurationError,
    ConflictError,
    ExternalServiceError,
    HTTPError,
    MissingExtraError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    SurefootError,
    UnprocessableError,
    ValidationError,
)
from .logging import get_logger

__version__ = "0.1.0"

__all__ = [
    "install",
    "Installation",
    "get_logger",
    "Settings",
    "configure",
    "get_settings",
    "SurefootError",
    "ConfigurationError",
    "MissingExtraError",
    "HTTPError",
    "ValidationError",
    "AuthenticationError",
    "AuthorizationError",
    "NotFoundError",
    "ConflictError",
    "UnprocessableError",
    "RateLimitError",
    "ExternalServiceError",
    "ServiceUnavailableError",
]
