"""Scheduling jobs onto nodes, through a transport (Ray by default).

The coordinator decides which node runs which attempt (alive, free slot, not blocklisted for the job's
kind); a transport (`lookalike.coordinator.transport`) makes the calls to nodes and hands back only the
small reply messages. By default that is Ray: a Ray actor, the gateway, makes the gRPC calls
concurrently. Frames never travel through it: nodes read and write media in the segment store.
`InProcessTransport` calls Python handlers instead, with no Ray and no processes (unit tests).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lookalike.coordinator.transport import STORE_DOWN, RayTransport, Transport

from lookalike.errors import CancelledError, JobError, LookalikeError, StoreError
from lookalike.obs import ATTEMPTS, JOB_SECONDS, JOBS, NODES, QUEUE_DEPTH, QUEUE_WAIT, get_logger

log = get_logger("dispatch")

# Codes after which the same job may well succeed on another try or another node.
WAITING_STAGE = "waiting for nodes"
TRANSIENT = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL", "UNKNOWN", "RESOURCE_EXHAUSTED", "ABORTED", "CANCELLED"}
# STORE_DOWN (imported from the transport, and still importable from here) is what a call answers when a
# node says the segment store failed under it: the attempt is not charged, the node not blamed.


def __getattr__(name: str) -> Any:
    # The Ray actor moved to the transport; `from lookalike.coordinator.dispatch import NodeGateway`
    # still gives it (and imports Ray only then).
    if name == "NodeGateway":
        from lookalike.coordinator.transport import node_gateway

        return node_gateway()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def share_slots(
    waiting: dict[str, tuple[int, str, float, int]], stalled: set[str], tenant_running: dict[str, int], free: int
) -> dict[str, int]:
    """How many jobs each waiting project may start now.

    `waiting` maps a project to (priority, tenant, waiting since, jobs queued). Free slots go first to
    higher priority, then to the tenant with fewer attempts running (so one tenant's many projects do
    not starve another's one), then first come. A stalled project (offered slots, could use none)
    stands aside and gets only what is left over.
    """
    ranked = sorted(
        (p for p, w in waiting.items() if w[3] > 0 and p not in stalled),
        key=lambda p: (-waiting[p][0], tenant_running.get(waiting[p][1], 0), waiting[p][2]),
    )
    out: dict[str, int] = {}
    for p in ranked:
        out[p] = min(waiting[p][3], free)
        free -= out[p]
    for p in stalled:
        if p in waiting:
            out[p] = min(waiting[p][3], free)
    return out


class ProviderGate:
    """Farm-wide limits on paid provider calls: per provider, at most `concurrency` jobs at once and
    `per_minute` job starts a minute (a token bucket holding `concurrency`).

    Each node also limits its own calls (nodes.providers.middleware.RateLimit), but N nodes would
    then make N times the calls a provider allows; the coordinator, which starts every job, holds the
    limit for the whole farm. Not thread-safe on its own: the dispatcher calls it under its lock.
    """

    def __init__(self, per_minute: float = 20.0, concurrency: int = 4,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0 or concurrency < 1:
            raise ValueError("provider limits: per_minute must be > 0 and concurrency >= 1")
        self.rate, self.concurrency, self.clock = per_minute / 60.0, concurrency, clock
        self.running: dict[str, int] = {}
        self._tokens: dict[str, tuple[float, float]] = {}  # provider -> (tokens, when)

    def take(self, provider: str) -> bool:
        """Start one call to `provider` now if both limits allow it."""
        if self.running.get(provider, 0) >= self.concurrency:
            return False
        now = self.clock()
        tokens, stamp = self._tokens.get(provider, (float(self.concurrency), now))
        tokens = min(float(self.concurrency), tokens + (now - stamp) * self.rate)
        if tokens < 1.0:
            self._tokens[provider] = (tokens, now)
            return False
        self._tokens[provider] = (tokens - 1.0, now)
        self.running[provider] = self.running.get(provider, 0) + 1
        return True

    def give_back(self, provider: str) -> None:
        self.running[provider] = max(0, self.running.get(provider, 1) - 1)


@dataclass
class NodeSlot:
    node_id: str
    address: str
    capabilities: tuple[str, ...]
    slots: int
    last_seen: float
    running: int = 0
    down_until: float = 0.0


class Dispatcher:
    """Runs a project's jobs of some kinds to the end, one attempt at a time per job."""

    def __init__(self, state, *, ray_address: str | None = None, node_timeout_s: float = 6.0,
                 call_timeout_s: float = 300.0, blocklist_after: int = 3,
                 discard: Callable[[str], None] | None = None, providers: ProviderGate | None = None,
                 transport: Transport | None = None) -> None:
        """`transport` makes the calls to nodes; None: a `RayTransport` that joins the Ray cluster at
        `ray_address` (or starts a local one) unless Ray is already initialized here."""
        self.state = state
        self.discard = discard
        self.providers = providers or ProviderGate()
        # Our own queue in front of Ray: which waiting project gets the next free slots.
        self._waiting: dict[str, tuple[int, str, float, int]] = {}  # project -> (priority, tenant, since, queued)
        self._stalled: set[str] = set()
        self._tenant_running: dict[str, int] = {}
        self._not_before: dict[str, float] = {}  # job -> earliest retry time (backoff after a failure)
        self.node_timeout_s = node_timeout_s
        self.call_timeout_s = call_timeout_s
        self.blocklist_after = blocklist_after
        self._nodes: dict[str, NodeSlot] = {}
        # Re-entrant: picking a node under the lock asks which nodes are alive, which takes it too.
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self.transport: Transport = transport if transport is not None else RayTransport(ray_address)
        self._queued: dict[str, int] = {}
        # Read at scrape time, so an idle farm reports its nodes and an empty queue truthfully.
        NODES.set_function(lambda: len(self.alive_nodes()))
        QUEUE_DEPTH.set_function(lambda: sum(self._queued.values()))

    def close(self) -> None:
        """Release the transport (a Ray transport ends its gateway actor; Ray itself stays up)."""
        self.transport.close()

    # -- the node registry --------------------------------------------------------------------
    def register(self, node_id: str, address: str, capabilities: tuple[str, ...], slots: int) -> None:
        with self._lock:
            old = self._nodes.get(node_id)
            self._nodes[node_id] = NodeSlot(node_id, address, capabilities, max(1, slots), time.time(),
                                            running=old.running if old else 0)
            self._changed.notify_all()
        self.state.upsert_node(node_id, address, {"capabilities": list(capabilities), "slots": slots})
        log.info("node_registered", node=node_id, address=address)

    def heartbeat(self, node_id: str) -> bool:
        with self._lock:
            n = self._nodes.get(node_id)
            if n is None:
                return False
            n.last_seen = time.time()
            n.down_until = 0.0
        self.state.heartbeat(node_id)
        return True

    def alive_nodes(self) -> list[NodeSlot]:
        now = time.time()
        with self._lock:
            return [n for n in self._nodes.values() if now - n.last_seen < self.node_timeout_s and n.down_until < now]

    def wait_for_nodes(self, count: int, timeout: float) -> None:
        deadline = time.time() + timeout
        with self._lock:
            while len([n for n in self._nodes.values() if time.time() - n.last_seen < self.node_timeout_s]) < count:
                left = deadline - time.time()
                if left <= 0:
                    from lookalike.errors import UnreachableError

                    raise UnreachableError(f"only {len(self._nodes)} of {count} nodes registered within {timeout:.0f} s")
                self._changed.wait(left)

    def _reap_dead_nodes(self) -> None:
        """Nodes silent past the timeout lose their running attempts: those jobs go back to the queue."""
        now = time.time()
        with self._lock:
            dead = [n for n in self._nodes.values() if now - n.last_seen >= self.node_timeout_s]
            for n in dead:
                del self._nodes[n.node_id]
        for n in dead:
            moved = self.state.requeue_attempts_of_node(n.node_id, "node stopped heartbeating")
            log.warning("node_lost", node=n.node_id, requeued=moved)
            self.transport.forget(n.address)

    def _pick(self, kind: str, needs: tuple[str, ...], only: str | None = None) -> NodeSlot | None:
        """The least loaded alive node with a free slot that has `needs` and is not blocklisted for
        `kind` (only node `only`, when given); None when there is none."""
        best = None
        for n in self.alive_nodes():
            if only is not None and n.node_id != only:
                continue
            if n.running >= n.slots or any(c not in n.capabilities for c in needs):
                continue
            if self.state.is_blocklisted(n.node_id, kind, threshold=self.blocklist_after):
                continue
            if best is None or n.running / n.slots < best.running / best.slots:
                best = n
        return best

    def capabilities_known(self) -> set[str]:
        with self._lock:
            return {c for n in self._nodes.values() for c in n.capabilities}

    def call_any(self, method: str, request, reply_type, convert, *, tries: int = 3):
        """One synchronous call on any alive node (for quick questions such as Probe)."""
        from lookalike.errors import from_grpc_code

        last = None
        for _ in range(tries):
            nodes = self.alive_nodes()
            if not nodes:
                self.wait_for_nodes(1, self.node_timeout_s * 5)
                nodes = self.alive_nodes()
            node = min(nodes, key=lambda n: n.running / n.slots)
            code, payload = self.transport.result(
                self.transport.submit(node.address, method, request.SerializeToString(), 60.0))
            if code == "OK":
                return convert(reply_type.FromString(payload))
            if code == STORE_DOWN:
                raise StoreError(payload)
            last = from_grpc_code(code, payload)
            if code not in TRANSIENT:
                raise last
            with self._lock:
                node.down_until = time.time() + self.node_timeout_s
        raise last

    # -- fair share ---------------------------------------------------------------------------
    def _allowance(self, project_id: str) -> int:
        with self._lock:
            free = sum(max(0, n.slots - n.running) for n in self.alive_nodes())
            shares = share_slots(self._waiting, self._stalled, self._tenant_running, free)
        return shares.get(project_id, 0)

    # -- running jobs -------------------------------------------------------------------------
    def _why_stuck(self, queued: list, needs: tuple[str, ...]) -> str | None:
        """Why none of the `queued` jobs can start while none is in flight, in words (None: nothing
        stops them, or nothing is queued): no node is alive, or every alive node able to run them
        is blocklisted for their kinds (it failed them `blocklist_after` times)."""
        alive = self.alive_nodes()
        if not alive:
            return (f"no node is alive (none has sent a heartbeat for {self.node_timeout_s:.0f} s); "
                    "the work resumes when a node registers (start one with `lookalike node --coordinator ...`)")
        kinds = sorted({j.kind for j in queued})
        capable = [n for n in alive if all(c in n.capabilities for c in needs)]
        if not kinds or not capable:
            return None
        if all(self.state.is_blocklisted(n.node_id, k, threshold=self.blocklist_after) for k in kinds for n in capable):
            return (f"every node able to run {', '.join(kinds)} jobs ({', '.join(sorted(n.node_id for n in capable))}) "
                    f"failed them {self.blocklist_after} times and is blocklisted for them (see the attempts' errors); "
                    "the work resumes when another node registers (start one with `lookalike node --coordinator ...`)")
        return None

    def _show_waiting(self, project_id: str, stage: str | None, waiting: bool, reason: str = "") -> str | None:
        """While no node can take the project's work (`_why_stuck`), `status` says so (stage `waiting
        for nodes`, the reason in the project's error) instead of a silent `rendering`; the project
        does not fail, and shows its stage again once a node takes a job. Returns the stage to restore
        (None: not waiting)."""
        try:
            p = self.state.get_project(project_id)
            if waiting:
                self.state.set_project_state(project_id, p.state, stage=WAITING_STAGE, error=f"waiting: {reason}")
                return stage or (p.stage if p.stage != WAITING_STAGE else None) or p.state.value
            if p.stage == WAITING_STAGE:
                self.state.set_project_state(project_id, p.state, stage=stage, error=None)
        except LookalikeError as exc:  # a state store outage: the engine pauses the project its own way
            log.warning("waiting_not_shown", project=project_id, error=str(exc))
        return None

    def run(
        self,
        project_id: str,
        kinds: set[str],
        build: Callable[[object, object], tuple[str, object]],
        parse: Callable[[str, bytes], dict],
        *,
        cancelled: threading.Event | None = None,
        on_done: Callable[[object, dict], None] | None = None,
        needs: tuple[str, ...] = (),
        tenant: str = "default",
        priority: int = 0,
        select: Callable[[object], bool] | None = None,
        provider: Callable[[object], str | None] | None = None,
    ) -> None:
        """Dispatch every queued job of these kinds until each is succeeded (or raise JobError for a
        dead one). `build(job, attempt)` gives (Node method, request message); `parse(method, reply
        bytes)` gives the result dict stored with the promoted attempt. `provider(job)` names the paid
        provider a job calls (None: none): such a job starts only within the farm's provider limits."""
        missing = [c for c in needs if c not in self.capabilities_known()] if needs else []
        if missing:
            raise JobError(f"no node offers {', '.join(missing)}: these jobs cannot run on this farm",
                           hint="add a node with that capability (lookalike node --capabilities ...) or drop the requirement")
        inflight: dict = {}
        since = time.time()
        stranded: str | None = None  # the stage the project showed before it said it waits for nodes
        stuck: str | None = None  # why it waits, as shown
        affinity: dict[tuple[str, int], str] = {}  # (kind, scene) -> the node that last ran one
        try:
            while True:
                if cancelled is not None and cancelled.is_set():
                    self.transport.cancel([entry[1].id for entry in inflight.values()])
                    raise CancelledError(f"project {project_id} was cancelled")
                self._reap_dead_nodes()
                jobs = [j for j in self.state.jobs(project_id, kinds=kinds, results=False) if select is None or select(j)]
                dead = [j for j in jobs if j.state == "dead"]
                if dead:
                    raise JobError(f"job {dead[0].kind} (frames {dead[0].start_frame}-{dead[0].end_frame}) failed "
                                   f"for good: {dead[0].error}")
                if all(j.state == "succeeded" for j in jobs):
                    return
                now = time.time()
                queued = [j for j in jobs if j.state == "queued" and self._not_before.get(j.id, 0.0) <= now]
                with self._lock:
                    self._waiting[project_id] = (priority, tenant, since, len(queued))
                    self._queued[project_id] = len(queued)
                allowed = self._allowance(project_id)
                started = 0
                # Two passes: first each job goes to the node that ran its scene before in this run
                # (a node keeps a scene's decoded source and solved colour; a job of a new scene goes
                # to the least loaded node), then what is left takes any free node, so no node idles
                # while jobs wait.
                begun: set[str] = set()
                for steal in (False, True):
                    for job in queued:
                        if started >= allowed or job.id in begun:
                            continue
                        paid = provider(job) if provider is not None else None
                        with self._lock:
                            free = self._pick(job.kind, needs)
                            if free is None:
                                break  # no free node for this kind
                            home = affinity.get((job.kind, job.scene_index))
                            node = free if steal or home is None else self._pick(job.kind, needs, only=home)
                            if node is None:
                                continue  # its node is busy: the second pass may give it another
                            if paid and not self.providers.take(paid):
                                continue  # this provider is at its farm-wide limit; jobs for others may start
                            node.running += 1
                            self._tenant_running[tenant] = self._tenant_running.get(tenant, 0) + 1
                        begun.add(job.id)
                        affinity[(job.kind, job.scene_index)] = node.node_id
                        attempt = self.state.start_attempt(job.id, node.node_id)
                        QUEUE_WAIT.labels(job.kind).observe(max(0.0, attempt.started_at - job.updated_at))
                        method, request = build(job, attempt)
                        ref = self.transport.submit(node.address, method, request.SerializeToString(),
                                                    self.call_timeout_s, attempt.id)
                        inflight[ref] = (job, attempt, node, method, time.time(), paid)
                        started += 1
                with self._lock:
                    # A project that was offered slots but could start nothing (its jobs need what the
                    # free nodes lack) must not hold the queue: it stands aside until it starts again.
                    if allowed and not started:
                        self._stalled.add(project_id)
                    elif started:
                        self._stalled.discard(project_id)
                if started and stranded is not None:
                    stranded, stuck = self._show_waiting(project_id, stranded, False), None
                if not inflight:
                    why = self._why_stuck(queued, needs)
                    if why is not None and why != stuck:
                        log.warning("no_node_can_run", project=project_id, reason=why)
                        stranded = self._show_waiting(project_id, stranded, True, why)
                        stuck = why
                    with self._lock:
                        self._changed.wait(0.2)
                    continue
                ready = self.transport.wait(list(inflight), timeout=0.2)
                for ref in ready:
                    job, attempt, node, method, t0, paid = inflight.pop(ref)
                    self._release(node, tenant, paid)
                    code, payload = self.transport.result(ref)
                    try:
                        self._settle(job, attempt, node, method, code, payload, t0, parse, on_done)
                    except StoreError:
                        if code != STORE_DOWN:
                            # The state store is away: this result is settled later, when it is back.
                            inflight[ref] = (job, attempt, None, method, t0, None)
                        raise
        finally:
            with self._lock:
                self._queued.pop(project_id, None)
                self._waiting.pop(project_id, None)
                self._stalled.discard(project_id)
                self._changed.notify_all()
            for _job, _attempt, node, _, _, paid in inflight.values():
                if node is not None:
                    self._release(node, tenant, paid)
            if inflight:
                threading.Thread(target=self._settle_late, args=(dict(inflight), parse), name="late", daemon=True).start()

    def _release(self, node: NodeSlot, tenant: str, paid: str | None = None) -> None:
        with self._lock:
            if paid:
                self.providers.give_back(paid)
            node.running = max(0, node.running - 1)
            self._tenant_running[tenant] = max(0, self._tenant_running.get(tenant, 1) - 1)
            self._changed.notify_all()

    def _settle_late(self, inflight: dict, parse) -> None:
        """Results still on their way when a run ended (a hung node that came back, a cancelled
        project): each is offered to the state store, which refuses it (fencing), and its segment is
        dropped so nothing orphaned stays in the store."""
        for ref, (job, attempt, node, method, _, _) in inflight.items():
            try:
                code, payload = self.transport.result(ref, timeout=self.call_timeout_s + 30)
            except Exception as exc:  # noqa: BLE001 - a late result that never comes is simply gone
                log.warning("late_result_lost", job=job.id, attempt=attempt.id, error=repr(exc))
                continue
            result = parse(method, payload) if code == "OK" else None
            key = result.get("key") if result else None
            promoted = self._finish_patiently(attempt.id, ok=code == "OK", output_key=key, result=result,
                                              error=None if code == "OK" else f"{code}: {payload}",
                                              transient=code in TRANSIENT or code == STORE_DOWN,
                                              charge=code != STORE_DOWN)
            ATTEMPTS.labels(job.kind, "promoted" if promoted else "late").inc()
            log.info("late_result", job=job.id, attempt=attempt.id, node=node.node_id if node is not None else None, promoted=promoted, code=code)
            if not promoted and key and self.discard is not None:
                try:
                    self.discard(key)
                except Exception as exc:  # noqa: BLE001
                    log.warning("late_segment_not_deleted", key=key, error=repr(exc))

    def _finish_patiently(self, attempt_id: str, *, patience_s: float = 600.0, **kwargs) -> bool:
        """finish_attempt, waiting out a state store outage (backoff up to `patience_s`)."""
        delay, deadline = 0.5, time.time() + patience_s
        while True:
            try:
                return self.state.finish_attempt(attempt_id, **kwargs)
            except StoreError as exc:
                if time.time() > deadline:
                    raise
                log.warning("state_store_unavailable", attempt=attempt_id, retry_in_s=delay, error=str(exc))
                time.sleep(delay)
                delay = min(delay * 2, 15.0)

    def _settle(self, job, attempt, node, method, code, payload, t0, parse, on_done) -> None:
        JOB_SECONDS.labels(job.kind).observe(time.time() - t0)
        if code == "OK":
            result = parse(method, payload)
            promoted = self.state.finish_attempt(attempt.id, ok=True, output_key=result.get("key"), result=result)
            ATTEMPTS.labels(job.kind, "promoted" if promoted else "late").inc()
            if promoted:
                JOBS.labels(job.kind, "succeeded").inc()
                if on_done is not None:
                    on_done(job, result)
            elif result.get("key") and self.discard is not None:
                self.discard(result["key"])
            return
        if code == STORE_DOWN:
            # The segment store failed under the node. Retrying now would only spend the job's attempts
            # and blocklist healthy nodes: the attempt goes back to the queue uncharged and the project
            # pauses (the engine waits for the store with backoff, then resumes where it stood).
            log.warning("segment_store_unavailable", job=job.id, attempt=attempt.id, node=node.node_id,
                        error=payload)
            ATTEMPTS.labels(job.kind, "store_down").inc()
            self._finish_patiently(attempt.id, ok=False, error=f"{code}: {payload}", transient=True, charge=False)
            raise StoreError(payload)
        transient = code in TRANSIENT
        log.warning("attempt_failed", job=job.id, attempt=attempt.id, node=node.node_id, code=code, error=payload,
                    kind=job.kind)
        ATTEMPTS.labels(job.kind, "failed").inc()
        self.state.finish_attempt(attempt.id, ok=False, error=f"{code}: {payload}", transient=transient)
        self.state.record_failure(node.node_id, job.kind)
        # Back off before the retry: a store or a node that just failed gets a moment to recover.
        self._not_before[job.id] = time.time() + min(0.5 * 2 ** (attempt.number - 1), 10.0)
        if code == "UNAVAILABLE":
            with self._lock:
                node.down_until = time.time() + self.node_timeout_s
        after = self.state.get_job(job.id)
        if after.state == "dead":
            JOBS.labels(job.kind, "dead").inc()
