"""The remake pipeline of one project, stage by stage, resumable after a coordinator restart.

Every stage checks what is already done (documents stored, jobs succeeded) before doing anything, so a
restarted coordinator picks each unfinished project up where it was.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field

from lookalike.coordinator import fix, plan_ops, planner
from lookalike.coordinator.report import render_report
from lookalike.v1 import common_pb2, node_pb2

from lookalike.errors import CancelledError, InputError, JobError, LookalikeError, StoreError
from lookalike.obs import PROJECTS, get_logger

log = get_logger("engine")

OUTPUT_NAMES = ("final.mp4", "project.json", "analysis.json", "plan.json", "similarity.json", "report.html",
                "timeline.otio")
# Other formats a project can ask for; each lands as final.<container>.
EXTRA_FORMATS = {"webm": "final.webm", "webm:vp9": "final.webm", "webm:av1": "final.webm", "mp4:h265": None}


def output_names(options: dict) -> list[str]:
    """The files a finished project offers for download (an `analysis_only` project: analysis.json)."""
    if options.get("analysis_only"):
        return ["analysis.json"]
    extra = sorted({EXTRA_FORMATS[f] for f in options.get("formats") or () if EXTRA_FORMATS.get(f)})
    return [*OUTPUT_NAMES, *extra]
# Bumped when the media analysis changes, so cached analyses of the user's footage are made again.
MEDIA_ANALYSIS_VERSION = 2  # 2: usable_camera per usable stretch
STAGES = ("analyzing", "planned", "rendering", "assembling", "scoring", "done")


@dataclass
class Watch:
    events: list = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)


def out_key(project_id: str, name: str) -> str:
    return f"projects/{project_id}/out/{name}"


class Engine:
    def __init__(self, settings, state, store, dispatcher) -> None:
        self.settings = settings
        self.state = state
        self.store = store
        self.dispatcher = dispatcher
        self._threads: dict[str, threading.Thread] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._watch: dict[str, Watch] = {}
        self._stage_marks: dict[str, list[tuple[str, float]]] = {}
        self._overrides: dict[str, dict] = {}
        self._lock = threading.Lock()

    # -- progress -----------------------------------------------------------------------------
    def _w(self, project_id: str) -> Watch:
        with self._lock:
            return self._watch.setdefault(project_id, Watch())

    def emit(self, project_id: str, stage: str, done: int = 0, total: int = 0, message: str = "",
             state: str | None = None, error: str = "") -> None:
        ev = {"project_id": project_id, "stage": stage, "done": done, "total": total, "message": message,
              "state": state or stage, "time": time.time(), "error": error}
        w = self._w(project_id)
        with w.cond:
            w.events.append(ev)
            w.cond.notify_all()

    def watch(self, project_id: str, *, timeout_s: float = 24 * 3600) -> Iterator[dict]:
        """Progress events of a project until it ends; starts with its present state."""
        p = self.state.get_project(project_id)
        yield {"project_id": project_id, "stage": p.stage or p.state.value, "done": 0, "total": 0, "message": "",
               "state": p.state.value, "time": time.time(), "error": p.error or ""}
        w = self._w(project_id)
        seen = len(w.events)
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            with w.cond:
                while len(w.events) <= seen:
                    try:
                        p = self.state.get_project(project_id)
                    except StoreError:  # an outage pauses the watch; it does not end it
                        w.cond.wait(1.0)
                        continue
                    if p.state.value in ("done", "failed", "cancelled"):
                        yield {"project_id": project_id, "stage": p.state.value, "done": 1, "total": 1, "message": "",
                               "state": p.state.value, "time": time.time(), "error": p.error or ""}
                        return
                    w.cond.wait(0.5)
                new = w.events[seen:]
                seen = len(w.events)
            for ev in new:
                yield ev
                if ev["state"] in ("done", "failed", "cancelled"):
                    return

    # -- lifecycle ----------------------------------------------------------------------------
    def submit(self, tenant: str, name: str, sample_key: str, subject_key: str, options: dict):
        opts = dict(options, sample_key=sample_key, subject_key=subject_key)
        project = self.state.create_project(tenant, name, opts)
        self.start(project.id)
        return project

    def start(self, project_id: str, overrides: dict | None = None) -> None:
        """Run (or resume) a project's pipeline; `overrides` change options for this run only."""
        with self._lock:
            self._overrides[project_id] = dict(overrides or {})
            t = self._threads.get(project_id)
            if t is not None and t.is_alive():
                return
            # Before the call that asked for the work returns: a watcher that starts now must see the
            # project as under way, not as the finished project it was.
            if self.state.get_project(project_id).state.value in ("done", "failed"):
                self.state.set_project_state(project_id, "planned", stage="queued", progress=0.0)
            self._cancel[project_id] = threading.Event()
            t = threading.Thread(target=self._run, args=(project_id,), name=f"project-{project_id[:8]}", daemon=True)
            self._threads[project_id] = t
        t.start()

    def resume_unfinished(self) -> list[str]:
        # Attempts that were running when the last coordinator stopped have no one waiting for them:
        # their jobs go back to the queue, and fencing refuses their results if they ever arrive.
        self.state.requeue_stale(0.0)
        ids = []
        for p in self.state.unfinished_projects():
            ids.append(p.id)
            self.start(p.id)
        if ids:
            log.info("projects_resumed", count=len(ids))
        return ids

    def cancel(self, project_id: str):
        ev = self._cancel.get(project_id)
        if ev is not None:
            ev.set()
        self.state.cancel_project(project_id)
        self.emit(project_id, "cancelled", state="cancelled")
        PROJECTS.labels("cancelled").inc()
        return self.state.get_project(project_id)

    def join(self, project_id: str, timeout: float | None = None) -> bool:
        """Wait up to `timeout` seconds for the project's run in this process; True when none is running."""
        t = self._threads.get(project_id)
        if t is not None:
            t.join(timeout)
        return t is None or not t.is_alive()

    def running(self) -> list[str]:
        """The projects whose run is under way in this process."""
        with self._lock:
            return [p for p, t in self._threads.items() if t.is_alive()]

    # -- the pipeline -------------------------------------------------------------------------
    def _mark(self, project_id: str, stage: str) -> None:
        """Start timing `stage` (project.json's stage_seconds) without changing the project's state."""
        with self._lock:
            self._stage_marks.setdefault(project_id, []).append((stage, time.time()))

    def _stage(self, project_id: str, state: str, progress: float) -> None:
        self._mark(project_id, state)
        self.state.set_project_state(project_id, state, stage=state, progress=progress)
        self.emit(project_id, state, message=f"{state}")

    def _run(self, project_id: str) -> None:
        """The pipeline, resumed from where it stands after a state or segment store outage: the
        project pauses (a progress event says so) and retries with backoff instead of failing."""
        delay, waited = 1.0, 0.0
        while True:
            try:
                self._run_once(project_id)
                return
            except StoreError as exc:
                if waited > self.settings.store_patience_s:
                    self._fail(project_id, exc)
                    return
                log.warning("project_paused", project=project_id, error=str(exc), retry_in_s=delay)
                self._show_paused(project_id, exc)
                self.emit(project_id, "paused", message=f"paused: {exc}; retrying in {delay:.0f} s")
                if self._cancel[project_id].wait(delay):
                    return
                waited += delay
                delay = min(delay * 2, 30.0)

    def _show_paused(self, project_id: str, exc: StoreError) -> None:
        """Let `status` show why the project waits (stage 'paused', the store's error); the next stage
        clears it. When the state store itself is down this cannot be written, and the event says it."""
        try:
            p = self.state.get_project(project_id)
            self.state.set_project_state(project_id, p.state, error=f"paused: {exc}", stage="paused")
        except StoreError:
            pass

    def _run_once(self, project_id: str) -> None:
        cancelled = self._cancel[project_id]
        try:
            p = self.state.get_project(project_id)
            opts = {**p.options, **self._overrides.get(project_id, {})}
            analysis = self._analyze(project_id, opts, cancelled)
            if opts.get("analysis_only"):  # `lookalike analyze`, AnalyzeComprehensive: nothing rendered
                self.store.put_bytes(out_key(project_id, "analysis.json"), json.dumps(analysis, indent=2).encode())
                self.state.set_project_state(project_id, "done", stage="done", progress=1.0)
                self.emit(project_id, "done", 1, 1, state="done")
                PROJECTS.labels("done").inc()
                log.info("project_done", project=project_id, analysis_only=True)
                return
            version, plan = self._current_plan(project_id, analysis, opts, cancelled)
            first_version = version  # the plan as the user left it; fix rounds add versions after it
            target = opts.get("target")
            rounds_left = int(opts.get("max_rounds") or 0)
            while True:
                self._stage(project_id, "rendering", 0.3)
                segments, audio_key = self._render(project_id, version, plan, analysis, opts, cancelled)
                self._stage(project_id, "assembling", 0.8)
                self._assemble(project_id, version, segments, audio_key, plan, cancelled, opts)
                self._stage(project_id, "scoring", 0.9)
                similarity = self._score(project_id, version, opts, analysis, plan, cancelled)
                overall = similarity.get("overall")
                if target is None or overall is None or overall >= float(target) or rounds_left <= 0:
                    break
                # The fix loop: the weakest scenes' suggestions become plan operations; only the scenes
                # they touch render again, and the best round is what the user gets.
                ops = fix.suggestions_to_ops(similarity, plan=plan)
                if not ops:
                    break
                new_plan = fix.apply_suggestions(plan, ops)
                new_plan["edit"] = {"source": "fix", "round": int(opts.get("max_rounds") or 0) - rounds_left + 1,
                                    "ops": ops, "score_before": overall}
                version = self.state.put_document(project_id, "plan", new_plan)
                plan = new_plan
                rounds_left -= 1
                self.emit(project_id, "fixing", message=f"score {overall:.1f} < target {float(target):.1f}: "
                          f"{len(ops)} changes, round {new_plan['edit']['round']}")
            best_version, plan, similarity = self._best(project_id, first_version, version, plan, similarity)
            self.store.copy(self._final_key(project_id, best_version), out_key(project_id, "final.mp4"))
            for name, key in self._assembled(project_id, best_version).get("outputs", {}).items():
                self.store.copy(key, out_key(project_id, name))
            self._write_outputs(project_id, analysis, plan, similarity)
            self.state.set_project_state(project_id, "done", stage="done", progress=1.0)
            self.emit(project_id, "done", 1, 1, state="done")
            PROJECTS.labels("done").inc()
            log.info("project_done", project=project_id)
        except CancelledError:
            log.info("project_cancelled", project=project_id)
        except StoreError:
            raise
        except LookalikeError as exc:
            self._fail(project_id, exc)
        except Exception as exc:  # noqa: BLE001 - a project must end in a state, never hang
            log.error("project_crashed", project=project_id, error=repr(exc), tb=traceback.format_exc())
            self._fail(project_id, exc)

    def _current_plan(self, project_id: str, analysis: dict, opts: dict, cancelled=None) -> tuple[int, dict]:
        versions = self.state.document_versions(project_id, "plan")
        if not versions:
            plan = planner.make_plan(analysis, seed=int(opts.get("seed") or 0), loudness=opts.get("loudness"))
            if opts.get("media"):
                self._mark(project_id, "analyzing_media")
                media = self._analyze_media(project_id, opts, cancelled)
                music = self._analyze_music(project_id, opts, cancelled)
                self._mark(project_id, "matching")
                self.emit(project_id, "planned", message=f"matching {len(plan['scenes'])} scenes to "
                          f"{len(media)} media items")
                plan = planner.footage_plan(plan, analysis, media, text=opts.get("text") or (),
                                            script=opts.get("script") or "", music=music,
                                            keep_media_audio=bool(opts.get("keep_media_audio")),
                                            skipped=opts.get("media_skipped") or ())
            return self.state.put_document(project_id, "plan", plan), plan
        return max(versions), self.state.get_document(project_id, "plan", max(versions))

    # -- the user's footage -------------------------------------------------------------------
    def _analyze_media(self, project_id: str, opts: dict, cancelled) -> list[dict]:
        """Every media item analysed like the sample (range jobs, a merge, vision), each once per
        content: an item whose bytes were analysed before (this tenant, any project) is read from
        the cache. Returns the items of docs/footage.md, each with its `analysis`."""
        items = opts["media"]
        cache_keys = self._media_cache_keys(project_id, items)
        cached = {i: self._cached_json(key) for i, key in enumerate(cache_keys)}
        todo = [i for i, doc in cached.items() if doc is None]
        share = self._share(project_id)
        if todo:
            self.emit(project_id, "analyzing", message=f"analysing {len(todo)} of {len(items)} media items "
                      f"({len(items) - len(todo)} from the cache)")
            if not self._jobs(project_id, {"media_range"}):
                nodes = max(1, len(self.dispatcher.alive_nodes()))
                self.state.add_jobs(project_id, [
                    {"kind": "media_range", "scene_index": i, "start_frame": a, "end_frame": b, "spec": {},
                     "max_attempts": self.settings.max_attempts}
                    for i in todo for a, b in planner.analysis_ranges(int(items[i]["info"]["n_frames"]), nodes)])
            total = sum(j.end_frame - j.start_frame for j in self._jobs(project_id, {"media_range"}))
            done = [sum(j.end_frame - j.start_frame for j in self._jobs(project_id, {"media_range"})
                        if j.state == "succeeded")]

            def build_range(job, attempt):
                req = node_pb2.AnalyzeRequest(ctx=self._ctx(job, attempt), sample_key=items[job.scene_index]["key"])
                req.range.start_frame, req.range.end_frame = job.start_frame, job.end_frame
                return "Analyze", req

            def on_range(job, result):
                done[0] += job.end_frame - job.start_frame
                self.emit(project_id, "analyzing", done[0], total,
                          f"footage {items[job.scene_index]['name']}: frames {job.start_frame}-{job.end_frame}")

            self.dispatcher.run(project_id, {"media_range"}, build_range, _parse_features, cancelled=cancelled,
                                on_done=on_range, **share)
            ranges: dict[int, list] = {}
            for j in sorted(self._jobs(project_id, {"media_range"}), key=lambda j: j.start_frame):
                ranges.setdefault(j.scene_index, []).append(j.result["features"])
            self._add_once(project_id, "media_merge", todo)

            def build_merge(job, attempt):
                it = items[job.scene_index]
                # The matcher needs no sound features of the footage: only whether there is sound.
                audio = {"has_audio": bool(it["info"].get("has_audio")), "tempo_bpm": None, "beats_s": [],
                         "key": None, "lufs": None, "segments": [], "transcript": []}
                return "Analyze", node_pb2.AnalyzeRequest(
                    ctx=self._ctx(job, attempt), sample_key=it["key"], audio_features_json=json.dumps(audio),
                    range_features_json=[json.dumps(r) for r in ranges[job.scene_index]])

            self.dispatcher.run(project_id, {"media_merge"}, build_merge, _parse_features, cancelled=cancelled,
                                **share)
            merged = {j.scene_index: j.result["features"] for j in self._jobs(project_id, {"media_merge"})}
            self._add_once(project_id, "media_vision", todo)
            self.emit(project_id, "analyzing", message="footage: faces, people, text and subjects")

            def build_vision(job, attempt):
                return "Analyze", node_pb2.AnalyzeRequest(
                    ctx=self._ctx(job, attempt), sample_key=items[job.scene_index]["key"], vision=True,
                    analysis_json=json.dumps(merged[job.scene_index]))

            self.dispatcher.run(project_id, {"media_vision"}, build_vision, _parse_features, cancelled=cancelled,
                                **share)
            for j in self._jobs(project_id, {"media_vision"}):
                cached[j.scene_index] = j.result["features"]
                self.store.put_bytes(cache_keys[j.scene_index], json.dumps(j.result["features"]).encode())
        out = []
        for i, it in enumerate(items):
            info = it["info"]
            doc = dict(cached[i])
            doc["source"] = dict(doc["source"], path=it["name"])
            out.append({"name": it["name"], "media_id": it["sha256"][:24], "key": it["key"],
                        "kind": "photo" if int(info["n_frames"]) <= 1 else "video",
                        "width": info["width"], "height": info["height"], "fps": doc["source"]["fps"],
                        "n_frames": int(info["n_frames"]), "duration_s": info.get("duration_s"),
                        "has_audio": bool(info.get("has_audio")), "excluded": False, "analysis": doc})
        return out

    def _add_once(self, project_id: str, kind: str, indices: list[int]) -> None:
        """One job of `kind` per media item, unless the project has them already (a resumed run)."""
        if not self._jobs(project_id, {kind}):
            self.state.add_jobs(project_id, [{"kind": kind, "scene_index": i, "start_frame": 0, "end_frame": 0,
                                              "spec": {}, "max_attempts": self.settings.max_attempts}
                                             for i in indices])

    def _media_cache_keys(self, project_id: str, items: list[dict]) -> list[str]:
        """Where each item's analysis is cached: per tenant (hashed) and content, by analysis version."""
        import hashlib

        tenant = hashlib.sha256(self.state.get_project(project_id).tenant.encode()).hexdigest()[:16]
        return [f"cache/media/{tenant}/{it['sha256'][:32]}-{MEDIA_ANALYSIS_VERSION}.json" for it in items]

    def _cached_json(self, key: str) -> dict | None:
        from lookalike.errors import NotFoundError

        try:
            return json.loads(self.store.get_bytes(key))
        except (NotFoundError, ValueError):
            return None

    def _analyze_music(self, project_id: str, opts: dict, cancelled) -> dict | None:
        """The user's music track: its tempo and beats (an audio analysis job, no transcript)."""
        key = opts.get("music_key")
        if not key:
            return None
        self._add_once(project_id, "music_audio", [-1])
        self.emit(project_id, "analyzing", message=f"music {opts.get('music_name') or ''}: tempo and beats")

        def build(job, attempt):
            return "Analyze", node_pb2.AnalyzeRequest(ctx=self._ctx(job, attempt), sample_key=key, audio=True,
                                                      skip_transcription=True)

        self.dispatcher.run(project_id, {"music_audio"}, build, _parse_features, cancelled=cancelled,
                            **self._share(project_id))
        doc = self._jobs(project_id, {"music_audio"})[0].result["features"]
        return {"key": key, "name": opts.get("music_name") or "music", "media_id": (opts.get("music_sha256") or "")[:24],
                "tempo_bpm": doc.get("tempo_bpm"), "beats_s": doc.get("beats_s") or [],
                "duration_s": (opts.get("music_info") or {}).get("duration_s"), "has_audio": doc.get("has_audio")}

    def _best(self, project_id: str, first: int, version: int, plan: dict, similarity: dict) -> tuple[int, dict, dict]:
        """Among the fix rounds of this run (versions first..version), the one with the highest overall
        score (the latest on a tie). A user's own edit is never undone for a better score."""
        best = (similarity.get("overall") or -1.0, version, plan, similarity)
        for j in self._jobs(project_id, {"score"}):
            if j.state != "succeeded":
                continue
            v = _version(j)
            if not first <= v < version:
                continue
            sim = j.result["similarity"]
            if (sim.get("overall") or -1.0) > best[0]:
                best = (sim["overall"], v, self.state.get_document(project_id, "plan", v), sim)
        return best[1], best[2], best[3]

    def _jobs(self, project_id: str, kinds: set[str], version: int | None = None) -> list:
        return [j for j in self.state.jobs(project_id, kinds=kinds)
                if version is None or _version(j) == version]

    def _fail(self, project_id: str, exc: BaseException) -> None:
        kind = type(exc).__name__ if isinstance(exc, LookalikeError) else "LookalikeError"
        message = f"{kind}: {exc}"
        self.state.set_project_state(project_id, "failed", error=message)
        self.emit(project_id, "failed", state="failed", error=message)
        PROJECTS.labels("failed").inc()
        log.warning("project_failed", project=project_id, error=message)

    def _share(self, project_id: str) -> dict:
        """Who the project's jobs queue as: its tenant and priority (the fair-share queue's keys)."""
        p = self.state.get_project(project_id)
        return {"tenant": p.tenant, "priority": int(p.options.get("priority") or 0)}

    def _ctx(self, job, attempt) -> node_pb2.JobContext:
        return node_pb2.JobContext(project_id=job.project_id, job_id=job.id, attempt_id=attempt.id)

    def _analyze(self, project_id: str, opts: dict, cancelled) -> dict:
        analysis = self.state.get_document(project_id, "analysis")
        if analysis is not None:
            return analysis
        self._stage(project_id, "analyzing", 0.0)
        sample_key = opts["sample_key"]
        info = self.probe(sample_key, check="sample")
        jobs = self.state.jobs(project_id)
        if not any(j.kind.startswith("analyze") for j in jobs):
            ranges = planner.analysis_ranges(info["n_frames"], max(1, len(self.dispatcher.alive_nodes())))
            specs = [{"kind": "analyze_range", "scene_index": -1, "start_frame": a, "end_frame": b, "spec": {},
                      "max_attempts": self.settings.max_attempts} for a, b in ranges]
            specs.append({"kind": "analyze_audio", "scene_index": -1, "start_frame": 0, "end_frame": 0, "spec": {},
                          "max_attempts": self.settings.max_attempts})
            self.state.add_jobs(project_id, specs)
        total = info["n_frames"]
        done = [0]

        def build(job, attempt):
            req = node_pb2.AnalyzeRequest(ctx=self._ctx(job, attempt), sample_key=sample_key,
                                          audio=job.kind == "analyze_audio")
            req.range.start_frame, req.range.end_frame = job.start_frame, job.end_frame
            return "Analyze", req

        def on_done(job, result):
            done[0] += job.end_frame - job.start_frame
            self.emit(project_id, "analyzing", done[0], total, f"analyzed frames {job.start_frame}-{job.end_frame}")

        self.dispatcher.run(project_id, {"analyze_range", "analyze_audio"}, build, _parse_features,
                            cancelled=cancelled, on_done=on_done, **self._share(project_id))
        jobs = self.state.jobs(project_id)
        ranges = sorted((j for j in jobs if j.kind == "analyze_range"), key=lambda j: j.start_frame)
        audio = next(j for j in jobs if j.kind == "analyze_audio")
        if not any(j.kind == "analyze_merge" for j in jobs):
            self.state.add_jobs(project_id, [{"kind": "analyze_merge", "scene_index": -1, "start_frame": 0,
                                              "end_frame": info["n_frames"], "spec": {},
                                              "max_attempts": self.settings.max_attempts}])

        def build_merge(job, attempt):
            req = node_pb2.AnalyzeRequest(
                ctx=self._ctx(job, attempt), sample_key=sample_key,
                range_features_json=[json.dumps(j.result["features"]) for j in ranges],
                audio_features_json=json.dumps(audio.result["features"]),
            )
            return "Analyze", req

        self.dispatcher.run(project_id, {"analyze_merge"}, build_merge, _parse_features, cancelled=cancelled, **self._share(project_id))
        merged = next(j for j in self.state.jobs(project_id) if j.kind == "analyze_merge").result["features"]
        merged = self._vision(project_id, sample_key, merged, cancelled)
        merged["source"]["path"] = opts.get("sample_name") or merged["source"].get("path")
        self.state.put_document(project_id, "analysis", merged)
        self.state.set_project_state(project_id, "planned", stage="planned", progress=0.25)
        return merged

    def _vision(self, project_id: str, sample_key: str, doc: dict, cancelled) -> dict:
        """Faces, on-screen text and captions per scene, on a node (one job: a keyframe per scene)."""
        if not any(j.kind == "analyze_vision" for j in self.state.jobs(project_id)):
            self.state.add_jobs(project_id, [{"kind": "analyze_vision", "scene_index": -1, "start_frame": 0,
                                              "end_frame": 0, "spec": {}, "max_attempts": self.settings.max_attempts}])
        self.emit(project_id, "analyzing", message="faces, people, on-screen text and captions")

        def build(job, attempt):
            return "Analyze", node_pb2.AnalyzeRequest(ctx=self._ctx(job, attempt), sample_key=sample_key, vision=True,
                                                      analysis_json=json.dumps(doc))

        self.dispatcher.run(project_id, {"analyze_vision"}, build, _parse_features, cancelled=cancelled,
                            **self._share(project_id))
        return next(j for j in self.state.jobs(project_id) if j.kind == "analyze_vision").result["features"]

    def probe(self, key: str, *, check: str = "") -> dict:
        """Probe a stored file on some node (raises InputError for media that cannot be used)."""
        return self.dispatcher.call_any("Probe", node_pb2.ProbeRequest(key=key, check=check), node_pb2.ProbeReply,
                                        lambda r: json.loads(r.info_json))

    def _reuse(self, project_id: str, version: int, plan: dict) -> tuple[dict[int, list[str]], str | None]:
        """Segments and audio of the previous plan version that this version can keep: scenes an edit
        did not touch are not rendered again."""
        if version <= 1:
            return {}, None
        old_plan = self.state.get_document(project_id, "plan", version - 1)
        old_jobs = [j for j in self._jobs(project_id, {"render_range", "render_audio"}, version - 1)
                    if j.state == "succeeded"]
        if old_plan is None or not old_jobs:
            return {}, None
        keep = plan_ops.reusable_scenes(old_plan, plan)
        by_scene: dict[int, list] = {}
        for j in old_jobs:
            if j.kind == "render_range":
                by_scene.setdefault(j.scene_index, []).append(j)
        reused = {}
        for new_idx, old_idx in keep.items():
            chunks = sorted(by_scene.get(old_idx, []), key=lambda j: j.start_frame)
            want = plan["scenes"][new_idx]["end_frame"] - plan["scenes"][new_idx]["start_frame"]
            if chunks and sum(j.end_frame - j.start_frame for j in chunks) == want:
                reused[new_idx] = [j.result["key"] for j in chunks]
        audio = next((j.result["key"] for j in old_jobs if j.kind == "render_audio"), None)
        return reused, None if plan_ops.audio_affected(old_plan, plan) else audio

    def _render(self, project_id: str, version: int, plan: dict, analysis: dict, opts: dict, cancelled):
        fmt_doc = plan["format"]
        fmt = common_pb2.VideoFormat(
            width=fmt_doc["width"], height=fmt_doc["height"], codec=opts.get("codec") or "libx264",
            crf=int(opts.get("crf") or 20), preset="veryfast",
            fps=common_pb2.Rational(num=fmt_doc["fps_num"], den=fmt_doc["fps_den"]),
        )
        scenes = {s["index"]: s for s in plan["scenes"]}
        reused, reused_audio = self._reuse(project_id, version, plan)
        # Provider scenes (and the neighbours their transitions need) are generated once, before their
        # ranges; the nodes then read the stored clip instead of each paying the provider again.
        need = {i for i in scenes if i not in reused}
        need |= {j for i in need for j in (i - 1, i + 1) if j in scenes}
        generated = self._generate(project_id, version, [scenes[i] for i in sorted(need)], fmt, opts, cancelled)
        scenes = {i: dict(s, **generated.get(i, {})) for i, s in scenes.items()}
        if not self._jobs(project_id, {"render_range", "render_audio"}, version):
            specs = [j for j in planner.range_jobs(plan, int(opts.get("chunk_frames") or self.settings.chunk_frames),
                                                   self.settings.max_attempts) if j["scene_index"] not in reused]
            if reused_audio is None:
                specs.append({"kind": "render_audio", "scene_index": -1, "start_frame": 0, "end_frame": 0, "spec": {},
                              "max_attempts": self.settings.max_attempts})
            for spec in specs:
                spec["spec"] = dict(spec.get("spec") or {}, v=version)
            self.state.add_jobs(project_id, specs)
        total = fmt_doc["n_frames"]
        reused_frames = sum(scenes[i]["end_frame"] - scenes[i]["start_frame"] for i in reused)
        done = [reused_frames + sum(j.end_frame - j.start_frame for j in self._jobs(project_id, {"render_range"}, version)
                                    if j.state == "succeeded")]

        def build(job, attempt):
            key = f"projects/{project_id}/attempts/{job.id}/{attempt.id}"
            if job.kind == "render_audio":
                return "RenderAudio", node_pb2.RenderAudioRequest(
                    ctx=self._ctx(job, attempt), plan_json=json.dumps(plan), analysis_json=json.dumps(analysis),
                    sample_key=opts["sample_key"], keep_audio=bool(opts.get("keep_audio")), output_key=key + ".m4a",
                    duration_s=float(fmt_doc["duration_s"]), seed=int(opts.get("seed") or 0),
                )
            scene = scenes[job.scene_index]
            prev_s, next_s = scenes.get(job.scene_index - 1), scenes.get(job.scene_index + 1)
            req = node_pb2.RenderRangeRequest(
                prev_scene_json=json.dumps(prev_s) if prev_s else "", next_scene_json=json.dumps(next_s) if next_s else "",
                ctx=self._ctx(job, attempt), scene_json=json.dumps(scene), format=fmt,
                subject_key=opts.get("subject_key") or "", seed=scene["seed"], output_key=key + ".mp4",
                subject_seed=int(opts.get("seed") or 0),
                sample_key=opts["sample_key"], keep_video=bool(opts.get("keep_video")),
            )
            req.range.start_frame, req.range.end_frame = job.start_frame, job.end_frame
            return "RenderRange", req

        def on_done(job, result):
            if job.kind == "render_range":
                done[0] += job.end_frame - job.start_frame
                self.emit(project_id, "rendering", done[0], total,
                          f"scene {job.scene_index}: frames {job.start_frame}-{job.end_frame}")

        self.dispatcher.run(project_id, {"render_range", "render_audio"}, build, _parse_reply,
                            cancelled=cancelled, on_done=on_done, needs=tuple(opts.get("require") or ()),
                            select=lambda j: _version(j) == version, **self._share(project_id))
        jobs = self._jobs(project_id, {"render_range", "render_audio"}, version)
        by_scene: dict[int, list] = {}
        for j in jobs:
            if j.kind == "render_range":
                by_scene.setdefault(j.scene_index, []).append(j)
        segments: list[str] = []
        expected_start = 0
        for s in plan["scenes"]:
            if s["index"] in reused:
                segments += reused[s["index"]]
                expected_start = s["end_frame"]
                continue
            for j in sorted(by_scene.get(s["index"], []), key=lambda j: j.start_frame):
                if j.start_frame != expected_start:
                    raise JobError(f"rendered ranges leave a gap at frame {expected_start}")
                segments.append(j.result["key"])
                expected_start = j.end_frame
        if expected_start != total:
            raise JobError(f"rendered ranges end at frame {expected_start}, the plan has {total}")
        audio = reused_audio or next(j for j in jobs if j.kind == "render_audio").result["key"]
        return segments, audio

    def _generate(self, project_id: str, version: int, scenes: list[dict], fmt, opts: dict, cancelled) -> dict:
        """generate_scene jobs for the provider scenes among `scenes`: {scene index: what the render
        ranges need ({"clip_key", "provider"}, or {"provider": "local"} after a fallback)}. A scene whose
        entry is unchanged since an earlier version reuses that version's clip (same content hash)."""
        wanted = {s["index"]: s for s in scenes if (s.get("provider") or "local") not in ("local", "media")}
        if not wanted:
            return {}
        subject, seed = opts.get("subject_key") or "", int(opts.get("seed") or 0)
        digest = {i: _content_hash(s, fmt.width, fmt.height, fmt.fps.num, fmt.fps.den, subject, seed)
                  for i, s in wanted.items()}
        mine = {j.scene_index: j for j in self._jobs(project_id, {"generate_scene"}, version)}
        stored = self._clips_by_hash(project_id)
        missing = [i for i in wanted if digest[i] not in stored and i not in mine]
        if missing:
            self.state.add_jobs(project_id, [{"kind": "generate_scene", "scene_index": i, "start_frame":
                                              wanted[i]["start_frame"], "end_frame": wanted[i]["end_frame"],
                                              "spec": {"v": version, "h": digest[i]},
                                              "max_attempts": self.settings.max_attempts} for i in missing])

        def build(job, attempt):
            return "GenerateScene", node_pb2.GenerateSceneRequest(
                ctx=self._ctx(job, attempt), scene_json=json.dumps(wanted[job.scene_index]), format=fmt,
                subject_key=subject, seed=wanted[job.scene_index]["seed"], subject_seed=seed,
                output_key=f"projects/{project_id}/attempts/{job.id}/{attempt.id}.clip.mp4",
                sample_key=opts["sample_key"],
            )

        def on_done(job, result):
            self.emit(project_id, "generating", message=f"scene {job.scene_index}: footage from {result['provider']}")

        self.dispatcher.run(project_id, {"generate_scene"}, build, _parse_reply, cancelled=cancelled, on_done=on_done,
                            select=lambda j: _version(j) == version,
                            provider=lambda j: wanted[j.scene_index]["provider"], **self._share(project_id))
        done = self._clips_by_hash(project_id)
        out = {}
        for i in wanted:
            r = done[digest[i]].result
            out[i] = {"clip_key": r["key"], "provider": r["provider"]} if r["key"] else {"provider": "local"}
        return out

    def _clips_by_hash(self, project_id: str) -> dict:
        """The project's generated scene clips (succeeded generate_scene jobs) by content hash."""
        return {(j.spec or {}).get("h"): j for j in self.state.jobs(project_id)
                if j.kind == "generate_scene" and j.state == "succeeded"}

    def _assembled(self, project_id: str, version: int) -> dict:
        return next(j for j in self._jobs(project_id, {"assemble"}, version) if j.state == "succeeded").result

    def _final_key(self, project_id: str, version: int) -> str:
        return self._assembled(project_id, version)["key"]

    def _assemble(self, project_id: str, version: int, segments: list[str], audio_key: str, plan: dict,
                  cancelled, opts: dict | None = None) -> None:
        opts = opts or {}
        if not self._jobs(project_id, {"assemble"}, version):
            self.state.add_jobs(project_id, [{"kind": "assemble", "scene_index": -1, "start_frame": 0,
                                              "end_frame": plan["format"]["n_frames"], "spec": {"v": version},
                                              "max_attempts": self.settings.max_attempts}])

        def build(job, attempt):
            return "Assemble", node_pb2.AssembleRequest(
                ctx=self._ctx(job, attempt), segment_keys=segments, audio_key=audio_key,
                output_key=f"projects/{project_id}/attempts/{job.id}/{attempt.id}.mp4",
                expected_frames=plan["format"]["n_frames"], plan_json=json.dumps(plan),
                analysis_json=json.dumps(self.state.get_document(project_id, "analysis") or {}),
                formats=list(opts.get("formats") or ()), resolution=opts.get("resolution") or "",
                aspect=opts.get("aspect") or "",
            )

        self.dispatcher.run(project_id, {"assemble"}, build, _parse_reply, cancelled=cancelled,
                            select=lambda j: _version(j) == version, **self._share(project_id))

    def _score(self, project_id: str, version: int, opts: dict, analysis: dict, plan: dict, cancelled) -> dict:
        """similarity.json of this plan version's final.mp4: the output analysed by frame range across
        the nodes (as the sample is), then one Score job for keyframes, audio measures and the comparison."""
        final_key = self._final_key(project_id, version)
        if not any(j.state == "succeeded" for j in self._jobs(project_id, {"score"}, version)):
            output = self._analyze_output(project_id, version, final_key, cancelled)
            if not self._jobs(project_id, {"score"}, version):
                self.state.add_jobs(project_id, [{"kind": "score", "scene_index": -1, "start_frame": 0,
                                                  "end_frame": 0, "spec": {"v": version},
                                                  "max_attempts": self.settings.max_attempts}])
            self.emit(project_id, "scoring", message="keyframes, audio and the comparison")

            def build(job, attempt):
                return "Score", node_pb2.ScoreRequest(
                    ctx=self._ctx(job, attempt), sample_key=opts["sample_key"], output_key=final_key,
                    analysis_json=json.dumps(analysis), plan_json=json.dumps(plan),
                    output_analysis_json=json.dumps(output),
                )

            self.dispatcher.run(project_id, {"score"}, build, _parse_reply, cancelled=cancelled,
                                select=lambda j: _version(j) == version, **self._share(project_id))
        doc = next(j for j in self._jobs(project_id, {"score"}, version) if j.state == "succeeded").result["similarity"]
        doc = dict(doc, plan_version=version)
        self.state.put_document(project_id, "similarity", doc)
        return doc

    def _analyze_output(self, project_id: str, version: int, final_key: str, cancelled) -> dict:
        """analysis.json of a version's final.mp4, by frame range on as many nodes as there are (score_range
        jobs, score_audio beside them, then score_merge): the same document one process would make."""
        kinds = {"score_range", "score_audio"}
        if not self._jobs(project_id, kinds, version):
            n_frames = int(self.probe(final_key)["n_frames"])
            ranges = planner.analysis_ranges(n_frames, max(1, len(self.dispatcher.alive_nodes())))
            specs = [{"kind": "score_range", "scene_index": -1, "start_frame": a, "end_frame": b,
                      "spec": {"v": version}, "max_attempts": self.settings.max_attempts} for a, b in ranges]
            specs.append({"kind": "score_audio", "scene_index": -1, "start_frame": 0, "end_frame": 0,
                          "spec": {"v": version}, "max_attempts": self.settings.max_attempts})
            self.state.add_jobs(project_id, specs)
        total = sum(j.end_frame - j.start_frame for j in self._jobs(project_id, {"score_range"}, version))
        done = [sum(j.end_frame - j.start_frame for j in self._jobs(project_id, {"score_range"}, version)
                    if j.state == "succeeded")]

        def build(job, attempt):
            req = node_pb2.AnalyzeRequest(ctx=self._ctx(job, attempt), sample_key=final_key,
                                          audio=job.kind == "score_audio", skip_transcription=True)
            req.range.start_frame, req.range.end_frame = job.start_frame, job.end_frame
            return "Analyze", req

        def on_done(job, result):
            if job.kind == "score_range":
                done[0] += job.end_frame - job.start_frame
                self.emit(project_id, "scoring", done[0], total,
                          f"analyzed output frames {job.start_frame}-{job.end_frame}")

        select = lambda j: _version(j) == version  # noqa: E731
        self.dispatcher.run(project_id, kinds, build, _parse_features, cancelled=cancelled, on_done=on_done,
                            select=select, **self._share(project_id))
        jobs = self._jobs(project_id, kinds, version)
        ranges = sorted((j for j in jobs if j.kind == "score_range"), key=lambda j: j.start_frame)
        audio = next(j for j in jobs if j.kind == "score_audio")
        if not self._jobs(project_id, {"score_merge"}, version):
            self.state.add_jobs(project_id, [{"kind": "score_merge", "scene_index": -1, "start_frame": 0,
                                              "end_frame": total, "spec": {"v": version},
                                              "max_attempts": self.settings.max_attempts}])

        def build_merge(job, attempt):
            return "Analyze", node_pb2.AnalyzeRequest(
                ctx=self._ctx(job, attempt), sample_key=final_key,
                range_features_json=[json.dumps(j.result["features"]) for j in ranges],
                audio_features_json=json.dumps(audio.result["features"]),
            )

        self.dispatcher.run(project_id, {"score_merge"}, build_merge, _parse_features, cancelled=cancelled,
                            select=select, **self._share(project_id))
        return next(j for j in self._jobs(project_id, {"score_merge"}, version)).result["features"]

    def _write_outputs(self, project_id: str, analysis: dict, plan: dict, similarity: dict) -> None:
        p = self.state.get_project(project_id)
        jobs = self.state.jobs(project_id)
        project_doc = {
            "schema": "lookalike.project/1",
            "id": p.id,
            "name": p.name,
            "created": p.created_at,
            "options": {k: v for k, v in p.options.items() if not k.endswith("_key")},
            "jobs": {kind: sum(1 for j in jobs if j.kind == kind) for kind in sorted({j.kind for j in jobs})},
            "attempts": sum(j.attempts_used for j in jobs),
            # Wall seconds per stage in this coordinator's run (a resumed project shows the resumed part).
            "stage_seconds": self._stage_seconds(project_id),
            "outputs": output_names(p.options),
        }
        for name, doc in (("project.json", project_doc), ("analysis.json", analysis), ("plan.json", plan),
                          ("similarity.json", similarity)):
            self.store.put_bytes(out_key(project_id, name), json.dumps(doc, indent=2).encode())
        self.store.put_bytes(out_key(project_id, "report.html"), render_report(analysis, plan, similarity).encode())

    def _stage_seconds(self, project_id: str) -> dict[str, float]:
        with self._lock:
            marks = list(self._stage_marks.get(project_id, []))
        marks.append(("end", time.time()))
        out: dict[str, float] = {}
        for (stage, t0), (_, t1) in itertools.pairwise(marks):
            out[stage] = round(out.get(stage, 0.0) + t1 - t0, 3)
        return out

    def output(self, project_id: str, name: str) -> str:
        names = output_names(self.state.get_project(project_id).options)
        if name not in names:
            raise InputError(f"no output named {name!r}; outputs are {', '.join(names)}")
        return out_key(project_id, name)


def _version(job) -> int:
    """The plan version a job renders (jobs made before versions existed belong to version 1)."""
    return int((job.spec or {}).get("v", 1))


def _parse_features(method: str, payload: bytes) -> dict:
    reply = node_pb2.AnalyzeReply.FromString(payload)
    return {"key": None, "features": json.loads(reply.features_json)}


def _content_hash(*parts) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _parse_reply(method: str, payload: bytes) -> dict:
    if method == "RenderAudio":
        r = node_pb2.AudioReply.FromString(payload)
        return {"key": r.key, "lufs": r.lufs, "peak_db": r.true_peak_db, "duration_s": r.duration_s}
    if method == "Assemble":
        r = node_pb2.AssembleReply.FromString(payload)
        return {"key": r.key, "n_frames": r.n_frames, "bytes": r.bytes, "info": json.loads(r.info_json),
                "outputs": dict(r.outputs)}
    if method == "GenerateScene":
        r = node_pb2.GenerateSceneReply.FromString(payload)
        return {"key": r.key or None, "provider": r.provider, "record": json.loads(r.record_json or "{}")}
    if method == "Score":
        r = node_pb2.ScoreReply.FromString(payload)
        return {"key": None, "similarity": json.loads(r.similarity_json)}
    r = node_pb2.SegmentReply.FromString(payload)
    return {"key": r.key, "n_frames": r.n_frames, "bytes": r.bytes, "sha256": r.sha256, "seconds": r.seconds}
