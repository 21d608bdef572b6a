"""Retries, time limits, rate limits and metering as middleware around a provider (dramatiq's way),
not code inside each provider; plus `poll`, the one loop that waits on a long-running task.

    Guarded(provider, [Metered(), Retry(), RateLimit(...), TimeLimit(...)])

Middleware runs outermost first. `Metered` sees the whole call (all attempts) and writes the
lookalike_provider_* metrics; `Retry` repeats transient ProviderErrors with exponential backoff
(honouring Retry-After) and never repeats permanent ones; `RateLimit` spaces and bounds the calls of
one provider across threads; `TimeLimit` gives the request a deadline that `poll` enforces. Clocks
and sleeps are injectable, so tests never wait.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from prometheus_client import Counter, Histogram

from lookalike.errors import ProviderError

from .base import METHODS

PROVIDER_CALLS = Counter(
    "lookalike_provider_calls_total",
    "Provider calls by outcome (ok, transient, permanent)",
    ["provider", "kind", "outcome"],
)
PROVIDER_RETRIES = Counter(
    "lookalike_provider_retries_total", "Provider attempts retried", ["provider", "kind"]
)
PROVIDER_FALLBACKS = Counter(
    "lookalike_provider_fallbacks_total", "Calls that moved on to the next provider", ["provider", "kind"]
)
PROVIDER_COST = Counter(
    "lookalike_provider_cost_usd_total", "Provider cost in US dollars", ["provider", "kind"]
)
PROVIDER_SECONDS = Histogram(
    "lookalike_provider_latency_seconds",
    "Wall time of one provider call, retries included",
    ["provider", "kind"],
    buckets=(0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600),
)

Call = Callable[[Any], Any]


class Middleware(Protocol):
    def __call__(self, provider: Any, kind: str, request: Any, call_next: Call) -> Any: ...


class Guarded:
    """`provider` seen through `middleware`: the same interface (generate/speak/compose/effect)."""

    def __init__(self, provider: Any, kind: str, middleware: Sequence[Middleware] = ()) -> None:
        self.inner, self.kind, self.middleware = provider, kind, list(middleware)
        self.name, self.models = provider.name, tuple(provider.models)
        setattr(self, METHODS[kind], self._run)

    def _run(self, request: Any) -> Any:
        call: Call = getattr(self.inner, METHODS[self.kind])
        for mw in reversed(self.middleware):
            call = _bind(mw, self.inner, self.kind, call)
        return call(request)

    def __getattr__(self, item: str) -> Any:  # provider extras such as ElevenLabsVoice.clone
        return getattr(self.inner, item)


def _bind(mw: Middleware, provider: Any, kind: str, nxt: Call) -> Call:
    return lambda request: mw(provider, kind, request, nxt)


def _with_record(result: Any, **changes: Any) -> Any:
    return dataclasses.replace(result, record=dataclasses.replace(result.record, **changes))


class Metered:
    """Counts calls by outcome, latency and cost; fills `record.seconds`."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock

    def __call__(self, provider: Any, kind: str, request: Any, call_next: Call) -> Any:
        t0 = self.clock()
        try:
            result = call_next(request)
        except ProviderError as exc:
            PROVIDER_SECONDS.labels(provider.name, kind).observe(self.clock() - t0)
            PROVIDER_CALLS.labels(provider.name, kind, "transient" if exc.transient else "permanent").inc()
            raise
        seconds = self.clock() - t0
        PROVIDER_SECONDS.labels(provider.name, kind).observe(seconds)
        PROVIDER_CALLS.labels(provider.name, kind, "ok").inc()
        PROVIDER_COST.labels(provider.name, kind).inc(max(0.0, result.record.cost_usd))
        return _with_record(result, seconds=seconds)


class Retry:
    """Retries transient ProviderErrors: `max_attempts` in all, delays base_s * 2**k (jittered, capped
    at max_s) or the provider's Retry-After when it gives one. Permanent errors pass straight through."""

    def __init__(
        self,
        max_attempts: int = 4,
        base_s: float = 2.0,
        max_s: float = 60.0,
        *,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts, self.base_s, self.max_s, self.sleep = max_attempts, base_s, max_s, sleep
        self._rng = random.Random(seed)
        self.delays: list[float] = []  # every backoff taken, for tests and logs

    def delay(self, attempt: int, exc: ProviderError) -> float:
        hinted = getattr(exc, "retry_after_s", None)
        if hinted is not None:
            return min(float(hinted), self.max_s)
        return min(self.max_s, self.base_s * 2**attempt) * self._rng.uniform(0.5, 1.0)

    def __call__(self, provider: Any, kind: str, request: Any, call_next: Call) -> Any:
        for attempt in range(self.max_attempts):
            try:
                result = call_next(request)
            except ProviderError as exc:
                if not exc.transient or attempt + 1 >= self.max_attempts:
                    exc.attempts = attempt + 1  # type: ignore[attr-defined]
                    raise
                PROVIDER_RETRIES.labels(provider.name, kind).inc()
                d = self.delay(attempt, exc)
                self.delays.append(d)
                self.sleep(d)
                continue
            return _with_record(result, attempts=attempt + 1)
        raise AssertionError("unreachable")


class RateLimit:
    """At most `per_minute` call starts a minute (a token bucket holding `burst`) and at most
    `concurrency` calls at once, for one provider across every thread of the process."""

    def __init__(
        self,
        per_minute: float = 60.0,
        *,
        burst: int = 1,
        concurrency: int = 4,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute <= 0 or concurrency < 1 or burst < 1:
            raise ValueError("per_minute must be > 0, burst and concurrency >= 1")
        self.rate = per_minute / 60.0
        self.burst, self.clock, self.sleep = float(burst), clock, sleep
        self._tokens, self._stamp = float(burst), clock()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(concurrency)
        self.waits: list[float] = []

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self.clock()
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                wait = (1.0 - self._tokens) / self.rate
            self.waits.append(wait)
            self.sleep(wait)

    def __call__(self, provider: Any, kind: str, request: Any, call_next: Call) -> Any:
        with self._slots:
            self.acquire()
            return call_next(request)


class TimeLimit:
    """Gives each attempt a deadline `seconds` ahead (or the request's own `timeout_s` when smaller);
    `poll` raises a transient ProviderError when a task is still running past it."""

    def __init__(self, seconds: float | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.clock = seconds, clock

    def __call__(self, provider: Any, kind: str, request: Any, call_next: Call) -> Any:
        limit = request.timeout_s if self.seconds is None else min(self.seconds, request.timeout_s)
        return call_next(dataclasses.replace(request, deadline=self.clock() + limit, timeout_s=limit))


def poll(
    fetch: Callable[[], Any],
    done: Callable[[Any], bool],
    *,
    what: str,
    interval_s: float,
    deadline: float | None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    max_interval_s: float = 30.0,
) -> Any:
    """Call `fetch` until `done(state)`, sleeping `interval_s` (growing 1.5x to max_interval_s) between
    calls; past `deadline` raise a transient ProviderError naming `what`."""
    wait = interval_s
    while True:
        state = fetch()
        if done(state):
            return state
        if deadline is not None and clock() + wait > deadline:
            raise ProviderError(
                f"{what} was still running at its time limit",
                transient=True,
                hint="raise LOOKALIKE_PROVIDER_TIMEOUT_S if the provider is slow today; the task is retried",
            )
        sleep(wait)
        wait = min(max_interval_s, wait * 1.5)
