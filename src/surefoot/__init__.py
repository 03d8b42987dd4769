"""surefoot: make an ASGI service production-grade in one call.

    import surefoot
    surefoot.install(app)
"""

from ._config import Settings, configure, get_settings
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

__version__ = "0.1.0"

__all__ = [
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
