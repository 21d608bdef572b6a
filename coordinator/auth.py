"""Who is calling and how much they may do: bearer tokens per tenant, the node token, per-tenant
request rates, and the checks every user-given name passes before it reaches the store.

Off by default: with no tokens file every caller is the tenant "default" and with no node token any
node may register (the embedded farm needs nothing). Configured, it is enforced in two places:

- `AuthInterceptor` on the coordinator's server: a Coordinator call needs `authorization: Bearer TOKEN`
  with a TOKEN from the tokens file (else UNAUTHENTICATED), then takes one request from its tenant's
  bucket (RESOURCE_EXHAUSTED when empty); a NodeRegistry call needs the node token. Each node's
  Node service is guarded the same way by `lookalike.grpcutil.NodeTokenGuard` (nodes never import
  the coordinator).
  Health stays open for probes; reflection is behind the token like the API (the coordinator passes
  it among `public`), and behind the node token on nodes.
- `CoordinatorServicer` asks `Auth.tenant(context)` itself (so a servicer without the interceptor is
  no way in) and scopes every project and upload to that tenant.

Tokens file: one `TOKEN TENANT` per line (`#` starts a comment), or a JSON object {"TOKEN": "TENANT"}.
Tokens are at least 16 characters; tenants are 1-64 of [A-Za-z0-9._-]. Tokens are compared in
constant time against every entry, so timing tells nothing about how much of a guess was right.
"""

from __future__ import annotations

import json
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping
from pathlib import Path

import grpc

from lookalike.errors import AuthError, ConfigError, InputError, LimitError, LookalikeError, NotFoundError  # noqa: F401
from lookalike.grpcutil import bearer_token, deny, tokens_equal

DEFAULT_TENANT = "default"
MIN_TOKEN_CHARS = 16
_TENANT = re.compile(r"[A-Za-z0-9._-]{1,64}")
_ID = re.compile(r"[0-9a-f]{32}")
PUBLIC_SERVICE = "lookalike.v1.Coordinator"
# Reflection on the coordinator's public port is behind the tenant token (when tokens are on), like the API.
REFLECTION_SERVICE = "grpc.reflection.v1alpha.ServerReflection"
NODE_SERVICES = ("lookalike.v1.NodeRegistry", "lookalike.v1.Node")


# AuthError and LimitError live in the one error tree (lookalike.errors); re-exported here.


# -- tokens ------------------------------------------------------------------------------------
def load_tokens(path: str | Path) -> dict[str, str]:
    """token -> tenant from a tokens file (see the module doc); ConfigError names the bad line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read the tokens file {p}: {exc}", hint="point LOOKALIKE_TOKENS_FILE at it"
        ) from exc
    pairs: list[tuple[str, str, str]] = []
    if text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"tokens file {p} is not valid JSON: {exc}") from exc
        pairs = [(str(k), v, f"entry {i + 1}") for i, (k, v) in enumerate(doc.items())]
    else:
        for n, line in enumerate(text.splitlines(), 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if len(words) != 2:
                raise ConfigError(
                    f"tokens file {p} line {n}: expected `TOKEN TENANT`, found {len(words)} words"
                )
            pairs.append((words[0], words[1], f"line {n}"))
    tokens: dict[str, str] = {}
    for token, tenant, where in pairs:
        if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
            raise ConfigError(f"tokens file {p} {where}: a tenant is 1-64 of letters, digits, '.', '_', '-'")
        if len(token) < MIN_TOKEN_CHARS or not token.isprintable() or not token.isascii():
            raise ConfigError(
                f"tokens file {p} {where}: a token is at least {MIN_TOKEN_CHARS} printable ASCII characters",
                hint="make one with `python -c 'import secrets; print(secrets.token_urlsafe())'`",
            )
        if token in tokens:
            raise ConfigError(f"tokens file {p} {where}: the same token appears twice")
        tokens[token] = tenant
    if not tokens:
        raise ConfigError(
            f"tokens file {p} holds no tokens", hint="add `TOKEN TENANT` lines, or unset it to turn auth off"
        )
    return tokens


class Auth:
    """Token -> tenant (None: auth off, every caller is `default`) and the node token (None: open)."""

    def __init__(self, tokens: Mapping[str, str] | None = None, node_token: str | None = None) -> None:
        self._tokens = list((tokens or {}).items())
        self.enabled = bool(self._tokens)
        self.node_token = node_token or None

    @classmethod
    def from_settings(cls, settings) -> Auth:
        tokens = load_tokens(settings.tokens_file) if settings.tokens_file else None
        return cls(tokens, settings.node_token)

    def tenant_of(self, metadata) -> str:
        if not self.enabled:
            return DEFAULT_TENANT
        token = bearer_token(metadata)
        if not token:
            raise AuthError(
                "this farm needs a token and the call carried none",
                hint="pass --token TOKEN or set LOOKALIKE_TOKEN (sent as `authorization: Bearer TOKEN`)",
            )
        found = None
        for known, tenant in self._tokens:  # every entry, always: constant time
            if tokens_equal(token, known):
                found = tenant
        if found is None:
            raise AuthError(
                "the token is not one this farm knows",
                hint="check --token / LOOKALIKE_TOKEN against the farm's tokens file",
            )
        return found

    def tenant(self, context: grpc.ServicerContext) -> str:
        return self.tenant_of(context.invocation_metadata())

    def check_node(self, metadata) -> None:
        if self.node_token is None:
            return
        token = bearer_token(metadata)
        if not token or not tokens_equal(token, self.node_token):
            raise AuthError(
                "a node call without the farm's node token" if not token else "a wrong node token",
                hint="start coordinator and nodes with the same LOOKALIKE_NODE_TOKEN",
            )


# -- rates -------------------------------------------------------------------------------------
class RateLimiter:
    """A token bucket per key: `burst` requests at once, refilled at `rate` per second (rate 0: off)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = float(rate)
        self.burst = max(1, int(burst))
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0.0 if the request may go ahead, else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            level, last = self._buckets.get(key, (float(self.burst), now))
            level = min(float(self.burst), level + (now - last) * self.rate)
            if level >= 1.0:
                self._buckets[key] = (level - 1.0, now)
                return 0.0
            self._buckets[key] = (level, now)
            return (1.0 - level) / self.rate


# -- the interceptor ---------------------------------------------------------------------------
class AuthInterceptor(grpc.ServerInterceptor):
    """Refuses calls without the right token, and calls past the tenant's rate, before any handler runs."""

    def __init__(
        self,
        auth: Auth,
        limiter: RateLimiter | None = None,
        *,
        public: tuple[str, ...] = (PUBLIC_SERVICE,),
        nodes: tuple[str, ...] = NODE_SERVICES,
    ) -> None:
        self.auth = auth
        self.limiter = limiter
        self.public = public
        self.nodes = nodes

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None:
            return None
        service = details.method.lstrip("/").split("/", 1)[0]
        try:
            if service in self.public:
                tenant = self.auth.tenant_of(details.invocation_metadata)
                wait = self.limiter.take(tenant) if self.limiter is not None else 0.0
                if wait:
                    return deny(
                        handler,
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"tenant {tenant} is over its request rate ({self.limiter.rate:g}/s, "
                        f"{self.limiter.burst} at once): retry in {wait:.2f} s",
                    )
            elif service in self.nodes:
                self.auth.check_node(details.invocation_metadata)
        except AuthError as exc:
            return deny(handler, grpc.StatusCode.UNAUTHENTICATED, str(exc))
        return handler


# -- names from users --------------------------------------------------------------------------
def check_id(value: str, what: str) -> str:
    """An id this farm gave out (32 lowercase hex digits); anything else is NotFoundError, unechoed past 80 chars."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise NotFoundError(f"no {what} {clean_label(value, 80)!r}")
    return value


def clean_label(text: str, max_chars: int = 200) -> str:
    """A name fit to store and show: NFC, no control, format (bidi overrides, zero-width) or separator
    characters other than the space, at most `max_chars`. Never a path: callers use it as text only."""
    text = unicodedata.normalize("NFC", str(text or ""))
    kept = [c if c == " " or unicodedata.category(c)[0] not in "CZ" else "" for c in text]
    return "".join(kept).strip()[:max_chars]


def check_tenant(tenant: str) -> str:
    if not _TENANT.fullmatch(tenant or ""):
        raise ConfigError(f"tenant name {tenant!r} is not 1-64 of letters, digits, '.', '_', '-'")
    return tenant
