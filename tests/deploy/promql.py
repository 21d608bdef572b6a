"""What the deploy tests need to know about PromQL and Grafana dashboards, in one place."""

from __future__ import annotations

import re
from collections.abc import Iterator

# The metrics lookalike/obs.py exports (a histogram also exports _bucket, _sum and _count).
METRICS = {
    "lookalike_frames_total": {"stage", "node"},
    "lookalike_jobs_total": {"kind", "state"},
    "lookalike_attempts_total": {"kind", "outcome"},
    "lookalike_job_seconds_bucket": {"kind", "le"},
    "lookalike_job_seconds_sum": {"kind"},
    "lookalike_job_seconds_count": {"kind"},
    "lookalike_queue_depth": set(),
    "lookalike_nodes": set(),
    "lookalike_projects_total": {"state"},
    "lookalike_bytes_stored_total": {"kind"},
    "lookalike_rpc_total": {"service", "method", "code"},
    "lookalike_queue_wait_seconds_bucket": {"kind", "le"},
    "lookalike_queue_wait_seconds_sum": {"kind"},
    "lookalike_queue_wait_seconds_count": {"kind"},
    "lookalike_node_slots": {"node"},
    "lookalike_node_busy_slots": {"node"},
    # Only where NVML finds a GPU (lookalike.obs.GpuCollector).
    "lookalike_node_gpu_utilization_ratio": {"node", "gpu"},
    "lookalike_node_gpu_memory_used_bytes": {"node", "gpu"},
    # prometheus_client's own process collector.
    "process_cpu_seconds_total": set(),
}

# Series that only GPU nodes export: on a CPU farm their panels are empty by design.
GPU_ONLY = ("lookalike_node_gpu_",)

# Values for Grafana's variables when a panel's query is run outside Grafana.
GRAFANA_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
    "node": ".*",
    "instance": ".*",
    "kind": ".*",
}

_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "or",
    "and",
    "unless",
    "bool",
    "offset",
}


def substitute(expr: str, variables: dict[str, str] = GRAFANA_VARIABLES) -> str:
    """`expr` with Grafana's $var and ${var} replaced; an unknown variable raises KeyError."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables[m.group(1) or m.group(2)], expr)


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (functions, keywords and labels left out)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", "", s)
    s = re.sub(r"\[[^\]]*\]", "", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", s):
        word, call = m.group(1), m.group(2)
        if call or word in _KEYWORDS or re.fullmatch(r"(?i)inf|nan", word):
            continue
        names.add(word)
    return names


def panel_queries(dashboard: dict) -> Iterator[tuple[str, str]]:
    """(panel title / refId, expr) for every query of every panel, rows included."""

    def walk(panels):
        for p in panels:
            yield p
            yield from walk(p.get("panels", []))

    for p in walk(dashboard.get("panels", [])):
        for t in p.get("targets") or []:
            if t.get("expr"):
                yield f"{dashboard['uid']}/{p['title']}/{t['refId']}", t["expr"]


def variable_queries(dashboard: dict) -> Iterator[tuple[str, str]]:
    """Grafana `label_values(SELECTOR, label)` variable queries as PromQL: count by (label) (SELECTOR)."""
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", q.strip())
        assert m, f"variable {v['name']}: only label_values(SELECTOR, LABEL) queries are supported, got {q!r}"
        yield f"{dashboard['uid']}/${v['name']}", f"count by ({m.group(2)}) ({m.group(1)})"


def rule_exprs(rules: dict, kind: str) -> Iterator[tuple[str, str]]:
    """(name, expr) of every rule of `kind` ('record' or 'alert') in a rules file."""
    for g in rules["groups"]:
        for r in g["rules"]:
            if kind in r:
                yield r[kind], r["expr"]
