"""Node utilization metrics: slots and busy slots read at scrape time, and GPU figures from NVML
(tested against a fake NVML module with pynvml's interface: no GPU here)."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import REGISTRY

from lookalike import obs


class FakeNvml:
    """The part of pynvml (nvidia-ml-py) the collector uses."""

    def __init__(self, utils, used, fail_init=False):
        self.utils, self.used, self.fail_init = utils, used, fail_init

    def nvmlInit(self):
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlDeviceGetCount(self):
        return len(self.utils)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetUtilizationRates(self, h):
        if self.utils[h] is None:
            raise RuntimeError("GPU is lost")
        return SimpleNamespace(gpu=self.utils[h], memory=0)

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(used=self.used[h], total=80 << 30, free=0)


def test_busy_and_slots_are_read_at_scrape_time():
    busy = [0]
    obs.init_node_metrics("node-obs-1", slots=3, busy=lambda: busy[0])
    assert REGISTRY.get_sample_value("lookalike_node_slots", {"node": "node-obs-1"}) == 3
    assert REGISTRY.get_sample_value("lookalike_node_busy_slots", {"node": "node-obs-1"}) == 0
    busy[0] = 2
    assert REGISTRY.get_sample_value("lookalike_node_busy_slots", {"node": "node-obs-1"}) == 2


def test_gpu_collector_reports_each_gpu_and_skips_a_lost_one():
    c = obs.GpuCollector("gpu-node", FakeNvml([37, None, 100], [1 << 30, 0, 5 << 30]))
    fams = {f.name: {tuple(s.labels.values()): s.value for s in f.samples} for f in c.collect()}
    assert fams["lookalike_node_gpu_utilization_ratio"] == {("gpu-node", "0"): 0.37, ("gpu-node", "2"): 1.0}
    assert fams["lookalike_node_gpu_memory_used_bytes"] == {("gpu-node", "0"): 1 << 30, ("gpu-node", "2"): 5 << 30}


def test_no_nvml_means_no_gpu_series(monkeypatch):
    monkeypatch.setattr(obs, "_gpu_collector", None)
    assert obs._register_gpu_collector("cpu-node", FakeNvml([], [], fail_init=True)) is None
    assert obs._register_gpu_collector("cpu-node", FakeNvml([], [])) is None  # NVML but no device
    assert REGISTRY.get_sample_value("lookalike_node_gpu_utilization_ratio", {"node": "cpu-node", "gpu": "0"}) is None


def test_a_gpu_node_registers_its_collector_once(monkeypatch):
    monkeypatch.setattr(obs, "_gpu_collector", None)
    c = obs._register_gpu_collector("gpu-node-2", FakeNvml([50], [2 << 30]))
    try:
        assert obs._register_gpu_collector("gpu-node-2") is c
        assert REGISTRY.get_sample_value("lookalike_node_gpu_utilization_ratio", {"node": "gpu-node-2", "gpu": "0"}) == 0.5
    finally:
        REGISTRY.unregister(c)
