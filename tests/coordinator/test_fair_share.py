from lookalike.coordinator.dispatch import ProviderGate, share_slots


def test_priority_first():
    waiting = {"low": (0, "a", 1.0, 5), "high": (5, "b", 9.0, 5)}
    assert share_slots(waiting, set(), {}, 3) == {"high": 3, "low": 0}


def test_tenant_with_less_running_goes_first_at_equal_priority():
    waiting = {"a1": (0, "a", 1.0, 4), "a2": (0, "a", 2.0, 4), "b1": (0, "b", 3.0, 4)}
    shares = share_slots(waiting, set(), {"a": 2, "b": 0}, 2)
    assert shares["b1"] == 2 and shares["a1"] == 0 and shares["a2"] == 0


def test_first_come_within_a_tenant_and_no_more_than_queued():
    waiting = {"old": (0, "a", 1.0, 1), "new": (0, "a", 2.0, 9)}
    assert share_slots(waiting, set(), {}, 4) == {"old": 1, "new": 3}


def test_a_stalled_project_does_not_block_the_queue():
    waiting = {"gpu": (9, "a", 1.0, 5), "cpu": (0, "b", 2.0, 5)}
    shares = share_slots(waiting, {"gpu"}, {}, 2)
    assert shares["cpu"] == 2 and shares["gpu"] == 0
    assert share_slots(waiting, {"gpu"}, {}, 7)["gpu"] == 2


def test_provider_gate_holds_concurrency_and_rate_for_each_provider():
    now = [0.0]
    gate = ProviderGate(per_minute=6, concurrency=2, clock=lambda: now[0])
    assert gate.take("runway") and gate.take("runway")
    assert not gate.take("runway"), "a third call at once past concurrency 2"
    assert gate.take("veo"), "one provider's limit held up another's"
    gate.give_back("runway")
    assert not gate.take("runway"), "the bucket (burst 2) is empty: the next start waits for a token"
    now[0] = 9.0  # 6 a minute: one token every 10 s
    assert not gate.take("runway")
    now[0] = 10.0
    assert gate.take("runway")
    assert gate.running == {"runway": 2, "veo": 1}
    for p in ("runway", "runway", "veo"):
        gate.give_back(p)
    assert gate.running == {"runway": 0, "veo": 0}


def test_provider_gate_refuses_limits_that_allow_nothing():
    import pytest

    for bad in ({"per_minute": 0}, {"concurrency": 0}):
        with pytest.raises(ValueError, match="provider limits"):
            ProviderGate(**bad)


def test_the_farm_and_its_nodes_read_the_same_provider_limits():
    """The coordinator (Settings) and each node (ProviderSettings) read LOOKALIKE_REQUESTS_PER_MINUTE
    and LOOKALIKE_CONCURRENCY alike, with the same defaults."""
    from lookalike.nodes.providers import ProviderSettings

    from lookalike.settings import Settings

    assert (Settings().requests_per_minute, Settings().concurrency) == (
        ProviderSettings().requests_per_minute, ProviderSettings().concurrency)
    env = {"LOOKALIKE_REQUESTS_PER_MINUTE": "90", "LOOKALIKE_CONCURRENCY": "3"}
    farm, node = Settings.from_env(env), ProviderSettings.from_env(env)
    assert (farm.requests_per_minute, farm.concurrency) == (node.requests_per_minute, node.concurrency) == (90.0, 3)
