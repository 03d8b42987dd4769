"""surefoot: make an ASGI service production-grade in one call.

    import surefoot
    surefoot.install(app)
"""

from typing import TYPE_CHECKING

from ._core.extras import lazy_exports
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

# Imported on first use: ``import surefoot`` stays light (the logging package is imported
# by ``install`` or the first ``surefoot.get_logger``).
__getattr__, __dir__ = lazy_exports(globals(), {"get_logger": (".logging._setup", "get_logger")})

if TYPE_CHECKING:  # pragma: no cover
    from .logging._setup import get_logger
