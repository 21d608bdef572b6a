"""Fetching a provider's output URL to a local file, with the errors translated."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from lookalike.errors import ProviderError

from .base import retry_after, status_error


def fetch(url: str, dest: Path, *, provider: str, timeout_s: float = 120.0, max_bytes: int = 4 << 30) -> Path:
    """Stream `url` into `dest` (atomically). A short or failed transfer is a transient ProviderError."""
    import httpx

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=True) as client:
            with client.stream("GET", url) as r:
                if r.status_code != 200:
                    r.read()
                    raise status_error(
                        provider,
                        r.status_code,
                        f"downloading the output: {r.text[:200]}",
                        retry_after_s=retry_after(r.headers),
                    )
                expected = r.headers.get("content-length")
                n = 0
                with open(tmp, "wb") as f:
                    for chunk in r.iter_bytes(1 << 20):
                        n += len(chunk)
                        if n > max_bytes:
                            raise ProviderError(
                                f"{provider}'s output is over {max_bytes >> 20} MiB", transient=False
                            )
                        f.write(chunk)
        if expected is not None and int(expected) != n:
            raise ProviderError(
                f"{provider}'s output download stopped at {n} of {expected} bytes", transient=True
            )
        os.replace(tmp, dest)
    except httpx.TimeoutException as exc:
        raise ProviderError(f"downloading {provider}'s output timed out", transient=True) from exc
    except httpx.HTTPError as exc:
        raise ProviderError(f"downloading {provider}'s output failed: {exc}", transient=True) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return dest
