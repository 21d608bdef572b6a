"""The deployment files agree with each other and with the code: every YAML/JSON parses, every
command is one the `lookalike` CLI accepts, and ports, hosts, images and labels line up."""

from __future__ import annotations

import json
import shlex
from importlib import metadata
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from conftest import DEPLOY, ROOT
from promql import METRICS, metric_names, panel_queries, rule_exprs, variable_queries

from lookalike.cli import build_parser

YAML_FILES = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))
JSON_FILES = sorted(DEPLOY.rglob("*.json"))
DOCKERFILES = sorted((DEPLOY / "docker").glob("*.Dockerfile"))


def parse_cli(argv: list[str]):
    """argv parsed by the real `lookalike` parser; argparse's exit becomes a test failure."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"`lookalike {shlex.join(argv)}` is rejected by lookalike.cli (exit {exc.code})")


def dockerfile(path: Path) -> dict[str, list[str]]:
    """Instruction -> list of arguments (continuation lines joined, comments dropped)."""
    out: dict[str, list[str]] = {}
    logical = ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") and not logical:
            continue
        if line.rstrip().endswith("\\"):
            logical += line.rstrip()[:-1] + " "
            continue
        logical += line
        if logical.strip():
            instr, _, rest = logical.strip().partition(" ")
            out.setdefault(instr.upper(), []).append(rest.strip())
        logical = ""
    return out


def exec_form(arg: str) -> list[str]:
    value = json.loads(arg)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"not exec form: {arg}"
    return value


def hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host, int(port)


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path} is empty"


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_json_parses(path):
    assert isinstance(json.loads(path.read_text()), dict)


def test_the_expected_files_exist():
    for rel in (
        "docker/coordinator.Dockerfile",
        "docker/node-gpu.Dockerfile",
        "docker/node-cpu.Dockerfile",
        "compose.yaml",
        "kuberay/raycluster.yaml",
        "kuberay/services.yaml",
        "prometheus/prometheus.yml",
        "prometheus/rules.yml",
        "grafana/provisioning/datasources/prometheus.yaml",
        "grafana/provisioning/dashboards/lookalike.yaml",
        "grafana/dashboards/farm-overview.json",
        "grafana/dashboards/node-detail.json",
        "grafana/dashboards/project-progress.json",
        "ci-deps.sh",
    ):
        assert (DEPLOY / rel).is_file(), rel


# ---- Dockerfiles ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_runs_a_real_cli_command_and_exposes_its_ports(path):
    d = dockerfile(path)
    scripts = {
        e.name for e in metadata.entry_points(group="console_scripts") if e.value == "lookalike.cli:main"
    }
    entry, cmd = exec_form(d["ENTRYPOINT"][-1]), exec_form(d["CMD"][-1])
    assert entry == ["lookalike"] and "lookalike" in scripts
    args = parse_cli(cmd)
    expose = {int(p.split("/")[0]) for line in d["EXPOSE"] for p in line.split()}
    assert hostport(args.listen)[1] in expose
    assert args.metrics_port in expose
    assert hostport(args.listen)[0] == "0.0.0.0", "a container must listen on all interfaces"
    # Every file the image copies is in the repository.
    for line in d.get("COPY", []):
        parts = line.split()
        assert not parts[0].startswith("--"), line
        for src in parts[:-1]:
            assert (ROOT / src).exists(), f"{path.name}: COPY {src} names nothing in the repository"
    # The health check runs the script the image copies, against the port the command listens on.
    health = d["HEALTHCHECK"][-1]
    hc = exec_form(health[health.index("CMD") + 3 :].strip())
    copied = {line.split()[-1]: line.split()[0] for line in d["COPY"]}
    assert copied[hc[1]] == "deploy/docker/healthcheck.py"
    assert hostport(hc[2])[1] == hostport(args.listen)[1]
    assert hc[3] == ("lookalike.v1.Coordinator" if args.command == "coordinator" else "lookalike.v1.Node")
    # Each Dockerfile has its own ignore file that keeps the build context to what it copies.
    assert Path(f"{path}.dockerignore").is_file()


def test_base_images_and_extras():
    assert dockerfile(DEPLOY / "docker" / "coordinator.Dockerfile")["FROM"][0] == "python:3.11-slim"
    assert dockerfile(DEPLOY / "docker" / "node-cpu.Dockerfile")["FROM"][0] == "python:3.11-slim"
    gpu = dockerfile(DEPLOY / "docker" / "node-gpu.Dockerfile")
    assert gpu["FROM"][0].startswith("nvidia/cuda:12.") and "runtime" in gpu["FROM"][0]
    assert any('".[gpu]"' in r or "'.[gpu]'" in r for r in gpu["RUN"])
    gpu_extra = [r for r in metadata.requires("lookalike") or [] if 'extra == "gpu"' in r]
    assert any(r.startswith("cupy-cuda12x") for r in gpu_extra), "the CUDA 12 base needs cupy-cuda12x"
    assert "gpu" in parse_cli(exec_form(gpu["CMD"][-1])).capabilities.split(",")


# ---- compose ---------------------------------------------------------------------------------------


def lookalike_args(service: dict) -> object:
    return parse_cli([str(a) for a in service["command"]])


def test_compose_services(compose):
    services = compose["services"]
    assert {"coordinator", "node-1", "node-2", "minio", "postgres", "prometheus", "grafana"} <= set(services)
    for name, svc in services.items():
        if "build" in svc:
            assert (DEPLOY / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file(), name
            assert (DEPLOY / svc["build"]["context"]).resolve() == ROOT
        assert "image" in svc, f"{name} names no image"
        for dep, cond in (
            (svc.get("depends_on") or {}).items() if isinstance(svc.get("depends_on"), dict) else ()
        ):
            assert dep in services, f"{name} depends on unknown {dep}"
            if cond.get("condition") == "service_healthy":
                target = services[dep]
                has_image_check = "build" in target and "HEALTHCHECK" in dockerfile(
                    DEPLOY / target["build"]["context"] / target["build"]["dockerfile"]
                )
                assert "healthcheck" in target or has_image_check, f"{dep} has no health check"


def test_compose_commands_line_up(compose):
    services = compose["services"]
    coord = lookalike_args(services["coordinator"])
    assert coord.command == "coordinator"
    c_host, c_port = hostport(coord.listen)
    published = {int(p.split(":")[-1]) for p in services["coordinator"]["ports"]}
    assert {c_port, coord.metrics_port} <= published

    # The database and the store are the compose services, with matching ports and credentials.
    db = urlsplit(coord.db)
    assert db.scheme == "postgresql" and db.hostname == "postgres" and db.port == 5432
    pg_env = services["postgres"]["environment"]
    assert db.username == pg_env["POSTGRES_USER"] and db.path.lstrip("/") == pg_env["POSTGRES_DB"]
    assert services["coordinator"]["environment"]["PGPASSWORD"] == pg_env["POSTGRES_PASSWORD"]
    store = urlsplit(coord.store)
    endpoint = urlsplit(parse_qs(store.query)["endpoint"][0])
    assert store.scheme == "s3" and store.netloc and endpoint.hostname == "minio"
    minio_cmd = services["minio"]["command"]
    assert minio_cmd[minio_cmd.index("--address") + 1] == f":{endpoint.port}"
    minio_env = services["minio"]["environment"]

    nodes = [n for n, s in services.items() if s.get("command") and str(s["command"][0]) == "node"]
    assert len([n for n in nodes if "profiles" not in services[n]]) == 2, "two nodes by default"
    for name in ["coordinator", *nodes]:
        env = services[name]["environment"]
        assert env["LOOKALIKE_S3_ACCESS_KEY"] == minio_env["MINIO_ROOT_USER"], name
        assert env["LOOKALIKE_S3_SECRET_KEY"] == minio_env["MINIO_ROOT_PASSWORD"], name
    for name in nodes:
        svc = services[name]
        args = lookalike_args(svc)
        assert args.coordinator == f"coordinator:{c_port}", name
        assert hostport(args.listen)[0] == "0.0.0.0"
        # The coordinator calls the node back at the name it advertises: that name must resolve.
        assert args.advertise_host in (name, svc.get("hostname")), name
        assert args.metrics_port is not None


def test_compose_prometheus_scrapes_what_runs(compose, prometheus_config):
    services = compose["services"]
    coord = lookalike_args(services["coordinator"])
    jobs = {j["job_name"]: j for j in prometheus_config["scrape_configs"]}
    assert jobs["lookalike-coordinator"]["static_configs"][0]["targets"] == [
        f"coordinator:{coord.metrics_port}"
    ]
    nodes = {
        n: lookalike_args(s) for n, s in services.items() if s.get("command") and s["command"][0] == "node"
    }
    sd = jobs["lookalike-nodes"]["dns_sd_configs"][0]
    assert set(sd["names"]) == set(nodes)
    assert {a.metrics_port for a in nodes.values()} == {sd["port"]}
    # The config and its rules are mounted where the command reads them.
    mounts = dict(v.split(":")[:2] for v in services["prometheus"]["volumes"] if v.startswith("./"))
    assert (DEPLOY / "prometheus").resolve() == (
        DEPLOY / next(k for k, v in mounts.items() if v == "/etc/prometheus")
    ).resolve()
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    for f in prometheus_config["rule_files"]:
        assert (DEPLOY / "prometheus" / f).is_file()


def test_compose_grafana_is_provisioned(compose):
    grafana = compose["services"]["grafana"]
    mounts = {v.split(":")[1]: DEPLOY / v.split(":")[0] for v in grafana["volumes"] if v.startswith("./")}
    assert mounts["/etc/grafana/provisioning"].resolve() == (DEPLOY / "grafana" / "provisioning").resolve()
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text())[
        "datasources"
    ]
    prom = compose["services"]["prometheus"]
    assert [d["url"] for d in ds] == [f"http://prometheus:{prom['ports'][0].split(':')[-1]}"]
    providers = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/lookalike.yaml").read_text())[
        "providers"
    ]
    path = providers[0]["options"]["path"]
    assert mounts[path].resolve() == (DEPLOY / "grafana" / "dashboards").resolve()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (mounts[path] / Path(home).relative_to(path)).is_file()


# ---- KubeRay ---------------------------------------------------------------------------------------


def kube_docs() -> list[dict]:
    return [
        d for p in sorted((DEPLOY / "kuberay").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d
    ]


def exec_lookalike(args: str) -> list[str]:
    """The `exec lookalike ...` command at the end of a container's shell line, as argv."""
    return shlex.split(args.split("exec lookalike", 1)[1])


def test_raycluster_has_the_required_fields():
    rc = next(d for d in kube_docs() if d["kind"] == "RayCluster")
    assert rc["apiVersion"] == "ray.io/v1"
    assert rc["spec"]["rayVersion"]
    head = rc["spec"]["headGroupSpec"]
    assert isinstance(head["rayStartParams"], dict)
    head_c = head["template"]["spec"]["containers"][0]
    assert head_c["image"]
    workers = rc["spec"]["workerGroupSpecs"]
    assert workers
    for g in workers:
        assert g["groupName"] and isinstance(g["rayStartParams"], dict)
        assert g["minReplicas"] <= g["replicas"] <= g["maxReplicas"]
        c = g["template"]["spec"]["containers"][0]
        assert int(c["resources"]["limits"]["nvidia.com/gpu"]) >= 1
        assert c["resources"]["requests"].get("nvidia.com/gpu") == c["resources"]["limits"]["nvidia.com/gpu"]


def test_raycluster_commands_and_services_line_up():
    docs = kube_docs()
    rc = next(d for d in docs if d["kind"] == "RayCluster")
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    # KubeRay keeps our command only with this annotation; our command runs its `ray start` first.
    assert rc["metadata"]["annotations"]["ray.io/overwrite-container-cmd"] == "true"
    head_c = rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert (
        "$KUBERAY_GEN_RAY_START_CMD" in head_c["args"][0]
        or "${KUBERAY_GEN_RAY_START_CMD" in head_c["args"][0]
    )
    coord = parse_cli(exec_lookalike(head_c["args"][0]))
    assert coord.command == "coordinator" and coord.ray_address == "auto"
    head_ports = {p["name"]: p["containerPort"] for p in head_c["ports"]}
    assert head_ports["grpc"] == hostport(coord.listen)[1] and head_ports["metrics"] == coord.metrics_port

    svc = services["lookalike-coordinator"]
    assert svc["spec"]["selector"] == {"ray.io/cluster": rc["metadata"]["name"], "ray.io/node-type": "head"}
    svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert svc_ports["grpc"]["targetPort"] in head_ports and svc_ports["metrics"]["targetPort"] in head_ports

    for g in rc["spec"]["workerGroupSpecs"]:
        c = g["template"]["spec"]["containers"][0]
        assert "KUBERAY_GEN_RAY_START_CMD" in c["args"][0]
        node = parse_cli(exec_lookalike(c["args"][0]))
        assert node.command == "node"
        assert node.coordinator == f"lookalike-coordinator:{svc_ports['grpc']['port']}"
        assert node.advertise_host == "$POD_IP"
        assert any(
            e["name"] == "POD_IP" and e["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
            for e in c["env"]
        )
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports["grpc"] == hostport(node.listen)[1] and ports["metrics"] == node.metrics_port
        assert "gpu" in node.capabilities.split(",")
        nodes_svc = services["lookalike-nodes"]
        assert nodes_svc["spec"]["clusterIP"] == "None"
        assert nodes_svc["spec"]["selector"] == {
            "ray.io/cluster": rc["metadata"]["name"],
            "ray.io/group": g["groupName"],
        }

    # Every configMapKeyRef points at a key that is defined here (secrets are created by hand).
    for c in [head_c, *(g["template"]["spec"]["containers"][0] for g in rc["spec"]["workerGroupSpecs"])]:
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("configMapKeyRef")
            if ref:
                assert ref["key"] in configmaps[ref["name"]]["data"], e["name"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["grpc"]["port"] in {p["containerPort"] for p in c["ports"]}


# ---- Prometheus rules and Grafana dashboards -------------------------------------------------------


def test_dashboards_query_only_lookalike_metrics(dashboards):
    assert set(dashboards) == {"farm-overview.json", "node-detail.json", "project-progress.json"}
    uids = [d["uid"] for d in dashboards.values()]
    assert len(uids) == len(set(uids))
    for name, d in dashboards.items():
        queries = list(panel_queries(d))
        assert len(queries) >= 5, name
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), name
        for where, expr in [*queries, *variable_queries(d)]:
            names = metric_names(expr)
            assert names, f"{where}: no metric in {expr!r}"
            assert names <= set(METRICS), f"{where}: unknown metrics {names - set(METRICS)}"


def test_rules_use_only_lookalike_metrics_and_recorded_series(rules):
    records = {name for name, _ in rule_exprs(rules, "record")}
    assert {
        "lookalike:frames:rate1m",
        "lookalike:attempt_failure_ratio:rate5m",
        "lookalike:job_failure_ratio:rate15m",
    } <= records
    alerts = {name for name, _ in rule_exprs(rules, "alert")}
    assert {
        "LookalikeNoNodes",
        "LookalikeQueueStuck",
        "LookalikeHighFailureRatio",
        "LookalikeDeadJobs",
        "LookalikeSegmentStoreDown",
    } <= alerts
    for name, expr in [*rule_exprs(rules, "record"), *rule_exprs(rules, "alert")]:
        assert metric_names(expr) <= set(METRICS) | records | {"up"}, name


def test_metric_names_reads_promql():
    expr = (
        '(sum by (kind) (rate(lookalike_attempts_total{outcome="failed", x=~"a|b"}[5m])) or vector(0)) '
        "/ on (kind) group_left lookalike_nodes > bool 0.5"
    )
    assert metric_names(expr) == {"lookalike_attempts_total", "lookalike_nodes"}
    assert metric_names("histogram_quantile(0.9, sum by (le) (rate(lookalike_job_seconds_bucket[1m])))") == {
        "lookalike_job_seconds_bucket"
    }
    assert metric_names("lookalike_typo_total") == {"lookalike_typo_total"}


def test_the_control_plane_port_is_set_and_reachable_in_both_deployments():
    """Node heartbeats go to a server of their own (LOOKALIKE_CONTROL_LISTEN): compose sets it, and on
    Kubernetes the head pod names the port and the coordinator Service exposes it."""
    from lookalike.settings import Settings

    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    env = compose["services"]["coordinator"]["environment"]
    port = hostport(env["LOOKALIKE_CONTROL_LISTEN"])[1]
    assert Settings.from_env({"LOOKALIKE_CONTROL_LISTEN": env["LOOKALIKE_CONTROL_LISTEN"]}).control_listen
    cluster = yaml.safe_load((DEPLOY / "kuberay" / "raycluster.yaml").read_text())
    head = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    k8s_env = {e["name"]: e.get("value") for e in head["env"]}
    assert hostport(k8s_env["LOOKALIKE_CONTROL_LISTEN"])[1] == port
    assert {"name": "control", "containerPort": port} in head["ports"]
    services = [d for d in yaml.safe_load_all((DEPLOY / "kuberay" / "services.yaml").read_text()) if d]
    coordinator = next(s for s in services if s["metadata"]["name"] == "lookalike-coordinator")
    assert any(p["name"] == "control" and p["port"] == port for p in coordinator["spec"]["ports"])
