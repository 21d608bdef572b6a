"""Lookalike: remake a sample video with the same rhythm, camera, colour and sound."""

from lookalike.errors import (
    CancelledError,
    ConfigError,
    InputError,
    JobError,
    LookalikeError,
    NotFoundError,
    ProviderError,
    StoreError,
    UnreachableError,
)

__version__ = "0.1.0"
__all__ = [
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
