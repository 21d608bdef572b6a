"""Lookalike: remake a sample video with the same rhythm, camera, colour and sound."""

from lookalike.errors import (
    AuthError,
    CancelledError,
    ConfigError,
    InputError,
    JobError,
    LimitError,
    LookalikeError,
    NotFoundError,
    ProviderError,
    StoreError,
    UnreachableError,
)

__version__ = "0.1.0"
__all__ = [
    "AuthError",
    "LimitError",
    "CancelledError",
    "ConfigError",
    "InputError",
    "JobError",
    "LookalikeError",
    "NotFoundError",
    "ProviderError",
    "StoreError",
    "UnreachableError",
    "__version__",
]
