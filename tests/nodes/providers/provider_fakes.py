"""A local HTTP server that plays a provider's documented API for the real SDKs, and small clips.

`FakeAPI()` starts a threaded http.server on 127.0.0.1 (random port); `api.route(METHOD, regex, fn)`
answers requests whose path matches with fn(request) -> (status, headers, body); `api.requests`
records every request (method, path, headers, body). A handler may block on `api.release` (set
when the server stops) to play a provider that never answers.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from lookalike.nodes import media


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"{}")


Reply = tuple[int, dict[str, str], bytes]


def reply_json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return status, {"content-type": "application/json", **(headers or {})}, json.dumps(obj).encode()


@dataclass
class FakeAPI:
    routes: list[tuple[str, re.Pattern[str], Callable[[Request], Reply]]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                n = int(self.headers.get("content-length") or 0)
                req = Request(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(n),
                )
                api.requests.append(req)
                for method, pattern, fn in api.routes:
                    if method == self.command and pattern.search(self.path.split("?")[0]):
                        status, headers, body = fn(req)
                        break
                else:
                    status, headers, body = reply_json(
                        {"error": f"no route for {self.command} {self.path}"}, 404
                    )
                if api.release.is_set() and status == 0:
                    return
                self.send_response(status)
                headers = {"content-length": str(len(body)), **headers}
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def route(self, method: str, pattern: str, fn: Callable[[Request], Reply]) -> None:
        self.routes.append((method, re.compile(pattern), fn))

    def hang(self, req: Request) -> Reply:
        """A provider that never answers (until the server stops)."""
        self.release.wait(30)
        return 0, {}, b""

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def write_clip(path: Path, *, width: int = 320, height: int = 180, fps: int = 24, n: int = 24) -> Path:
    """A clip whose frame i is a flat grey of level 40 + 6 * i (so the frame shown can be read back),
    with a red band on the left third (so a crop can be seen)."""
    with media.SegmentWriter(path, width=width, height=height, fps=Fraction(fps), crf=10) as w:
        for i in range(n):
            f = np.full((height, width, 3), 40 + 6 * i, np.uint8)
            f[:, : width // 3] = (200, 30, 30)
            w.write(f)
    return path


def level(frame: np.ndarray) -> float:
    """The grey level of a write_clip frame (read from its right part)."""
    h, w = frame.shape[:2]
    return float(frame[h // 4 : 3 * h // 4, 3 * w // 4 :].mean())


def clip_index(frame: np.ndarray) -> int:
    return int(round((level(frame) - 40) / 6))
