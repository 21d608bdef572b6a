"""Cluster mode for real: a coordinator process with PostgreSQL state and an S3 store (moto's server on
loopback), two node processes, remakes submitted through the CLI; and a node killed mid-job."""

from __future__ import annotations

import json
import signal
import time
import uuid

import numpy as np
import pytest
from farm import Farm, cli
from lookalike.client import Client
from lookalike.nodes import media
from synth import make_clip

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture
def farm(tmp_path, pg_url, pg_schema, s3_server):
    bucket = f"farm-{uuid.uuid4().hex[:8]}"
    f = Farm(tmp_path / "farm", db=f"{pg_url}?schema={pg_schema}", store=f"s3://{bucket}?endpoint={s3_server}",
             env={"LOOKALIKE_S3_ACCESS_KEY": "testing", "LOOKALIKE_S3_SECRET_KEY": "testing"})
    yield f
    f.close()


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("cluster") / "sample.mp4"
    truth = make_clip(path, [(40, (255, 190, 90), 2.0), (32, (90, 140, 255), -2.0), (24, (220, 90, 200), 0.0)])
    return path, truth


def _frames(path):
    return np.stack([f for _, _, f in media.iter_frames(str(path))])


def test_remake_through_a_cluster(tmp_path, farm, sample):
    path, truth = sample
    out = tmp_path / "out"
    r = cli("remake", str(path), "--out", str(out), "--cluster", farm.address, "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    info = media.probe(str(out / "final.mp4"))
    assert info.n_frames == truth["n_frames"] and (info.width, info.height) == truth["size"]
    sim = json.loads((out / "similarity.json").read_text())
    assert sim["metrics"]["cut_f1"] == 1.0
    # Both nodes took part, and the metrics endpoint says so.
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{farm.metrics_port}/metrics", timeout=5).read().decode()
    assert 'lookalike_jobs_total{kind="render_range",state="succeeded"}' in text
    status = cli("status", "--cluster", farm.address)
    assert status.returncode == 0 and '"state": "done"' in status.stdout


def test_a_node_killed_mid_job_changes_nothing(tmp_path, farm, sample):
    path, truth = sample
    with Client(farm.address) as c:
        reference = c.remake(path, out=tmp_path / "ref", chunk_frames=8)
        assert reference.state == "done"
        p = c.submit(path, chunk_frames=8)
        killed = False
        for ev in c.watch(p.id):
            if not killed and ev.stage == "rendering" and ev.done > 0:
                farm.nodes[0].send_signal(signal.SIGKILL)
                farm.nodes[0].wait()
                killed = True
            if ev.state in ("done", "failed", "cancelled"):
                break
        assert killed, "the render finished before a node could be killed"
        c.wait(p.id)
        c.fetch_outputs(p.id, tmp_path / "faulty")
    a, b = _frames(tmp_path / "ref" / "final.mp4"), _frames(tmp_path / "faulty" / "final.mp4")
    assert a.shape == b.shape == (truth["n_frames"], truth["size"][1], truth["size"][0], 3)
    assert np.array_equal(a, b), "a retried range rendered differently"


def test_coordinator_killed_mid_project_resumes_after_restart(tmp_path, farm, sample):
    """SIGKILL the coordinator while ranges render; a new one on the same address and database picks
    the project up, finishes it, and no job is promoted twice."""
    path, truth = sample
    with Client(farm.address) as c:
        p = c.submit(path, chunk_frames=8)
        for ev in c.watch(p.id):
            if ev.stage == "rendering" and ev.done > 0:
                break
    farm.kill_coordinator()
    farm.start_coordinator()
    with Client(farm.address) as c:
        done = c.wait(p.id)
        assert done.state == "done"
        c.fetch_outputs(p.id, tmp_path / "out")
    info = media.probe(str(tmp_path / "out" / "final.mp4"))
    assert info.n_frames == truth["n_frames"]
    from lookalike.coordinator.state import open_state

    db = next(a for a in farm.args if a.startswith("postgresql://"))
    with open_state(db) as st:
        jobs = st.jobs(p.id)
        assert jobs and all(j.state == "succeeded" for j in jobs)
        for j in jobs:
            promoted = [a for a in st.attempts(j.id) if a.state == "succeeded"]
            assert len(promoted) == 1, (j.kind, [a.state for a in st.attempts(j.id)])
        requeued = [a for j in jobs for a in st.attempts(j.id) if a.state in ("lost", "late")]
        assert requeued, "the kill happened after every attempt had finished: nothing was resumed"


def test_postgresql_restarting_mid_project_pauses_and_resumes(tmp_path, farm, sample):
    """The state store goes away under a running project: it pauses, retries, and completes with the
    right frames once PostgreSQL is back."""
    import subprocess

    path, truth = sample
    version = subprocess.run(["ls", "/etc/postgresql"], capture_output=True, text=True).stdout.split()[0]

    def pg(action: str) -> None:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action], check=True,
                       capture_output=True, timeout=60)

    # PostgreSQL is stopped (not restarted) once rendering starts, and started again only after the
    # project said it paused: a restart can fall between the project's last write and its end, and a
    # fast remake then never meets the outage. A project cannot finish without the store, so it must
    # pause.
    events: list = []
    with Client(farm.address) as c:
        p = c.submit(path, chunk_frames=8)
        watch = c.watch(p.id)
        for ev in watch:
            if ev.stage == "rendering":
                break
        pg("stop")
        try:
            deadline = time.time() + 90
            for ev in watch:
                events.append(ev)
                if ev.stage == "paused" or ev.state in ("done", "failed") or time.time() > deadline:
                    break
        finally:
            pg("start")
        assert any(e.stage == "paused" for e in events), [(e.stage, e.state) for e in events]
        done = c.wait(p.id, events.append)
        assert done.state == "done"
        c.fetch_outputs(p.id, tmp_path / "out")
    assert media.probe(str(tmp_path / "out" / "final.mp4")).n_frames == truth["n_frames"]


def test_the_s3_store_failing_mid_project_pauses_it_and_loses_nothing(tmp_path, pg_url, pg_schema, s3_server, sample):
    """The S3 store goes away under a running project (every connection cut, new ones refused): the
    project pauses and says why, spends no retries and blames no node; when the store is back it
    resumes and its frames are those of a fault-free run."""
    from farm import check_jobs_intact, ride_out_store_outage
    from faultproxy import FaultProxy
    from lookalike.coordinator.state import open_state

    path, truth = sample
    host, port = s3_server.removeprefix("http://").rsplit(":", 1)
    proxy = FaultProxy(host, int(port))
    db = f"{pg_url}?schema={pg_schema}"
    f = Farm(tmp_path / "farm", db=db, store=f"s3://farm-{uuid.uuid4().hex[:8]}?endpoint=http://{proxy.address}",
             env={"LOOKALIKE_S3_ACCESS_KEY": "testing", "LOOKALIKE_S3_SECRET_KEY": "testing"})
    try:
        with Client(f.address) as c:
            assert c.remake(path, out=tmp_path / "ref", chunk_frames=8).state == "done"
        seen = ride_out_store_outage(f, path, tmp_path / "faulty", proxy.down, proxy.up)
        assert proxy.refused > 0, "the outage reached nobody"
        assert "segment store" in seen["paused"].error and proxy.address in seen["paused"].error
        assert seen["done"].state == "done" and seen["done"].error in ("", None)
        with open_state(db) as st:
            check_jobs_intact(st, seen["done"].id, [n.node_id for n in f.nodes])
    finally:
        f.close()
        proxy.close()
    a, b = _frames(tmp_path / "ref" / "final.mp4"), _frames(tmp_path / "faulty" / "final.mp4")
    assert a.shape[0] == truth["n_frames"] and np.array_equal(a, b), "the outage changed the remake"
