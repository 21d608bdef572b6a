"""Chat edits: the local parser over the common requests, and the real Anthropic and OpenAI SDKs
against a local HTTP server that speaks their APIs (tool calls, 401, 429), with the fallback."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from lookalike.coordinator import chat, planner
from lookalike.coordinator import plan_ops as po
from test_plan_ops import _analysis, check_consistent

from lookalike.errors import InputError, ProviderError


@pytest.fixture
def plan():
    """Five scenes of 100 frames at 24 fps (scene numbers 1-5 in chat)."""
    return planner.make_plan(_analysis([100, 200, 300, 400], 500), seed=1)


# ---------------------------------------------------------------- the local parser

CASES = [
    (
        "make scene 3 warmer and slower",
        [
            {"op": "adjust_grade", "scene": 2, "temperature": 0.1},
            {"op": "set_duration", "scene": 2, "factor": 1.25},
        ],
    ),
    ("swap 2 and 4", [{"op": "swap_scenes", "a": 1, "b": 3}]),
    ("swap scene 2 with scene 4", [{"op": "swap_scenes", "a": 1, "b": 3}]),
    ("scene 1 cooler", [{"op": "adjust_grade", "scene": 0, "temperature": -0.1}]),
    ("shorten scene 2 by 10 frames", [{"op": "set_duration", "scene": 1, "delta_frames": -10}]),
    ("extend scene 2 by 1 second", [{"op": "set_duration", "scene": 1, "delta_frames": 24}]),
    ("make the last scene 2 seconds long", [{"op": "set_duration", "scene": 4, "n_frames": 48}]),
    ("delete scene 5", [{"op": "delete_scene", "scene": 4}]),
    ("remove scenes 2 and 3", [{"op": "delete_scene", "scene": 2}, {"op": "delete_scene", "scene": 1}]),
    (
        "set the prompt of scene 2 to A red kite. Over the sea, at dusk",
        [{"op": "set_prompt", "scene": 1, "prompt": "A red kite. Over the sea, at dusk"}],
    ),
    ("make it brighter", [{"op": "adjust_grade", "scene": None, "exposure": 0.3}]),
    ("more contrast in scene 4", [{"op": "adjust_grade", "scene": 3, "contrast": 0.2}]),
    ("pan left in scene 1", [{"op": "set_camera", "scene": 0, "motion": "pan_left"}]),
    (
        "use a dissolve into scene 3",
        [{"op": "set_transition", "scene": 2, "kind": "dissolve", "n_frames": 12}],
    ),
    (
        "crossfade into the third scene over 20 frames",
        [{"op": "set_transition", "scene": 2, "kind": "dissolve", "n_frames": 20}],
    ),
    ("faster music", [{"op": "set_music", "tempo_factor": 1.1}]),
    ("tempo 128", [{"op": "set_music", "tempo_bpm": 128.0}]),
    ("music in f sharp minor", [{"op": "set_music", "key": "F# minor"}]),
    ("use elevenlabs for the music", [{"op": "set_music", "provider": "elevenlabs"}]),
    ("make the music with the local synth", [{"op": "set_music", "provider": "local"}]),
    (
        "voice line for scene 2: Hello there, and welcome.",
        [{"op": "set_voice_line", "scene": 1, "text": "Hello there, and welcome."}],
    ),
    (
        "make scene 1 much warmer and scene 2 slightly cooler",
        [
            {"op": "adjust_grade", "scene": 0, "temperature": 0.2},
            {"op": "adjust_grade", "scene": 1, "temperature": -0.05},
        ],
    ),
    ("scenes 2 to 4 darker", [{"op": "adjust_grade", "scene": i, "exposure": -0.3} for i in (1, 2, 3)]),
    ("black and white", [{"op": "set_grade", "scene": None, "saturation": 0.0}]),
    (
        "add film grain to scene 2",
        [{"op": "set_effect", "scene": 1, "effect": "film_grain", "strength": 0.5}],
    ),
    ("move scene 5 to the start", [{"op": "move_scene", "scene": 4, "to": 0}]),
    (
        "add a scene after scene 2: a dog running",
        [{"op": "insert_scene", "at": 2, "n_frames": 100, "prompt": "a dog running", "like": 1}],
    ),
    ("use runway for scene 3", [{"op": "set_provider", "scene": 2, "provider": "runway"}]),
    (
        "zoom in on scene 2 and make it punchier",
        [
            {"op": "set_camera", "scene": 1, "motion": "zoom_in"},
            {"op": "adjust_grade", "scene": 1, "contrast": 0.2},
        ],
    ),
    ("fade in", [{"op": "set_transition", "scene": 0, "kind": "fade", "n_frames": 12}]),
    ("scene 2 should show a cat on a sofa", [{"op": "set_prompt", "scene": 1, "prompt": "a cat on a sofa"}]),
]


def _expected(d):
    return po.op_from_dict({k: v for k, v in d.items()})


@pytest.mark.parametrize("message, expected", CASES, ids=[c[0] for c in CASES])
def test_local_parser(plan, message, expected):
    ops = chat.propose(plan, message)
    assert ops == [_expected(d) for d in expected]
    check_consistent(po.apply(plan, ops))


@pytest.mark.parametrize(
    "message, match",
    [
        ("delete scene 9", "there is no scene 9: the plan has scenes 1-5"),
        ("make it sing", "could not understand"),
        ("scene 2", "names a scene but no change"),
        ("   ", "the request is empty"),
        ("voice line for scene 2:", "voice-over line is empty"),
        ("shorten scene 2 by 500 frames", "set_duration.delta_frames"),
        ("make slower", "say which scene"),
        ("weirder music", "about the music"),
    ],
)
def test_local_parser_says_what_it_cannot_do(plan, message, match):
    with pytest.raises(InputError, match=match):
        chat.propose(plan, message)


# ---------------------------------------------------------------- a fake API server


class FakeAPI:
    """An HTTP server on 127.0.0.1 that answers each POST with the next scripted (status, body,
    headers) and records what it was sent (path, headers, JSON body)."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict, dict]] = []
        self.requests: list[dict] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                api.requests.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                    }
                )
                status, reply, headers = (
                    api.script.pop(0) if api.script else (500, {"error": "script ran out"}, {})
                )
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def api():
    server = FakeAPI()
    yield server
    server.close()


def anthropic_message(*blocks, stop_reason="tool_use"):
    """A Messages API response (POST /v1/messages) with these content blocks."""
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-5",
        "content": list(blocks),
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 812, "output_tokens": 64},
    }


def tool_use(name, args, n=1):
    return {"type": "tool_use", "id": f"toolu_0{n}", "name": name, "input": args}


def anthropic_error(kind, message):
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_01"}


def openai_completion(*calls, content=None):
    """A Chat Completions response (POST /v1/chat/completions) with these tool calls."""
    message = {"role": "assistant", "content": content, "refusal": None}
    if calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
            for i, (name, args) in enumerate(calls)
        ]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4.1",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if calls else "stop",
            }
        ],
        "usage": {"prompt_tokens": 900, "completion_tokens": 40, "total_tokens": 940},
    }


def openai_error(status_code, message, code):
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error" if status_code == 401 else "requests",
            "param": None,
            "code": code,
        }
    }


# ---------------------------------------------------------------- Anthropic


def test_anthropic_tool_calls_become_operations(plan, api):
    api.script.append(
        (
            200,
            anthropic_message(
                {"type": "text", "text": "Warming scene 3 and slowing it down."},
                tool_use("adjust_grade", {"scene": 2, "temperature": 0.1}, 1),
                tool_use("set_duration", {"scene": 2, "factor": 1.25}, 2),
            ),
            {},
        )
    )
    provider = chat.AnthropicProvider("sk-ant-test", base_url=api.url, max_retries=0)
    got = chat.propose_detailed(plan, "make scene 3 warmer and slower", provider=provider)
    assert got.source == "anthropic" and got.fallback_reason is None
    assert got.ops == [po.AdjustGrade(scene=2, temperature=0.1), po.SetDuration(scene=2, factor=1.25)]

    (req,) = api.requests
    assert req["path"] == "/v1/messages"
    # The key travels as x-api-key or, in newer SDKs, as a bearer token.
    headers = req["headers"]
    assert headers.get("x-api-key") == "sk-ant-test" or headers.get("authorization") == "Bearer sk-ant-test"
    assert "anthropic-version" in headers
    body = req["body"]
    assert body["model"] == "claude-sonnet-5" and body["max_tokens"] > 0
    assert body["messages"] == [{"role": "user", "content": "make scene 3 warmer and slower"}]
    assert {t["name"] for t in body["tools"]} == set(po.OPS)
    schema = next(t for t in body["tools"] if t["name"] == "set_duration")["input_schema"]
    assert schema == po.SetDuration.json_schema()
    assert '"index": 2, "scene": 3' in body["system"]  # the plan, so the model can pick scenes


def test_anthropic_bad_key_is_permanent_and_falls_back(plan, api):
    api.script.append((401, anthropic_error("authentication_error", "invalid x-api-key"), {}))
    provider = chat.AnthropicProvider("sk-ant-wrong", base_url=api.url, max_retries=2)
    got = chat.propose_detailed(plan, "scene 1 cooler", provider=provider)
    assert got.source == "local" and got.ops == [po.AdjustGrade(scene=0, temperature=-0.1)]
    assert "rejected the API key" in got.fallback_reason and "ANTHROPIC_API_KEY" in got.fallback_reason
    assert len(api.requests) == 1  # a 401 is never retried

    api.script.append((401, anthropic_error("authentication_error", "invalid x-api-key"), {}))
    with pytest.raises(ProviderError) as exc:
        provider.propose(plan, "scene 1 cooler")
    assert exc.value.transient is False


def test_anthropic_rate_limit_is_retried_then_transient(plan, api):
    limited = (
        429,
        anthropic_error("rate_limit_error", "Number of request tokens has exceeded your rate limit"),
        {"retry-after-ms": "1"},
    )
    api.script += [limited, (200, anthropic_message(tool_use("delete_scene", {"scene": 4})), {})]
    provider = chat.AnthropicProvider("sk-ant-test", base_url=api.url, max_retries=1)
    assert chat.propose(plan, "drop the final scene", provider=provider) == [po.DeleteScene(scene=4)]
    assert len(api.requests) == 2  # the SDK retried after the 429

    api.script += [limited, limited]
    with pytest.raises(ProviderError) as exc:
        provider.propose(plan, "drop the final scene")
    assert exc.value.transient is True and "429" in str(exc.value)


def test_anthropic_proposals_that_do_not_fit_fall_back(plan, api):
    # A scene that does not exist, then an answer with no tool call: the local parser answers both.
    api.script.append((200, anthropic_message(tool_use("delete_scene", {"scene": 7})), {}))
    api.script.append(
        (200, anthropic_message({"type": "text", "text": "Which scene?"}, stop_reason="end_turn"), {})
    )
    provider = chat.AnthropicProvider("sk-ant-test", base_url=api.url, max_retries=0)
    first = chat.propose_detailed(plan, "delete scene 2", provider=provider)
    assert first.source == "local" and first.ops == [po.DeleteScene(scene=1)]
    second = chat.propose_detailed(plan, "swap 1 and 2", provider=provider)
    assert second.source == "local" and "Which scene?" in second.fallback_reason
    # A bad field from the model is a provider failure, and what the user asked is still refused
    # clearly when the local parser cannot read it either.
    api.script.append((200, anthropic_message(tool_use("set_grade", {"scene": 0, "hue": 3})), {}))
    with pytest.raises(InputError, match="could not understand") as exc:
        chat.propose(plan, "give it a hue shift", provider=provider)
    assert "set_grade.hue" in str(exc.value)


# ---------------------------------------------------------------- OpenAI


def test_openai_function_calls_become_operations(plan, api):
    api.script.append(
        (200, openai_completion(("swap_scenes", {"a": 1, "b": 3}), ("set_music", {"tempo_bpm": 128})), {})
    )
    provider = chat.OpenAIProvider("sk-test", base_url=api.url + "/v1", max_retries=0)
    got = chat.propose_detailed(plan, "swap 2 and 4, and tempo 128", provider=provider)
    assert got.source == "openai"
    assert got.ops == [po.SwapScenes(a=1, b=3), po.SetMusic(tempo_bpm=128.0)]
    (req,) = api.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["authorization"] == "Bearer sk-test"
    body = req["body"]
    assert body["messages"][0]["role"] == "system" and body["messages"][1] == {
        "role": "user",
        "content": "swap 2 and 4, and tempo 128",
    }
    tools = {t["function"]["name"]: t for t in body["tools"]}
    assert set(tools) == set(po.OPS) and all(t["type"] == "function" for t in tools.values())
    assert tools["swap_scenes"]["function"]["parameters"] == po.SwapScenes.json_schema()


def test_openai_401_and_429(plan, api):
    api.script.append(
        (401, openai_error(401, "Incorrect API key provided: sk-wrong.", "invalid_api_key"), {})
    )
    provider = chat.OpenAIProvider("sk-wrong", base_url=api.url + "/v1", max_retries=2)
    with pytest.raises(ProviderError) as exc:
        provider.propose(plan, "scene 1 cooler")
    assert exc.value.transient is False and "OPENAI_API_KEY" in str(exc.value)
    assert len(api.requests) == 1

    limited = (
        429,
        openai_error(429, "Rate limit reached for requests", "rate_limit_exceeded"),
        {"retry-after-ms": "1"},
    )
    api.script += [limited, limited, limited]
    with pytest.raises(ProviderError) as exc:
        provider.propose(plan, "scene 1 cooler")
    assert exc.value.transient is True
    assert len(api.requests) == 4  # one try and two retries
    api.script += [limited]
    fallback = chat.propose_detailed(
        plan,
        "scene 1 cooler",
        provider=chat.OpenAIProvider("sk-test", base_url=api.url + "/v1", max_retries=0),
    )
    assert fallback.source == "local" and "rate limiting" in fallback.fallback_reason


def test_openai_malformed_arguments_fall_back(plan, api):
    reply = openai_completion(("set_prompt", {"scene": 1, "prompt": "x"}))
    reply["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = '{"scene": 1, "prompt": '
    api.script.append((200, reply, {}))
    got = chat.propose_detailed(
        plan,
        "pan left in scene 1",
        provider=chat.OpenAIProvider("sk-test", base_url=api.url + "/v1", max_retries=0),
    )
    assert got.source == "local" and "not JSON" in got.fallback_reason


def test_unreachable_provider_falls_back(plan):
    provider = chat.AnthropicProvider(
        "sk-ant-test", base_url="http://127.0.0.1:9", max_retries=0, timeout_s=2
    )
    got = chat.propose_detailed(plan, "scene 1 cooler", provider=provider)
    assert got.source == "local" and "cannot reach" in got.fallback_reason


# ---------------------------------------------------------------- choosing a provider


def test_provider_from_keys():
    assert chat.provider_from_keys() is None
    assert chat.provider_from_keys(anthropic_api_key="a", prefer="local") is None
    assert isinstance(
        chat.provider_from_keys(anthropic_api_key="a", openai_api_key="o"), chat.AnthropicProvider
    )
    assert isinstance(chat.provider_from_keys(openai_api_key="o"), chat.OpenAIProvider)
    assert isinstance(
        chat.provider_from_keys(anthropic_api_key="a", openai_api_key="o", prefer="openai"),
        chat.OpenAIProvider,
    )
    with pytest.raises(ProviderError, match="ANTHROPIC_API_KEY"):
        chat.provider_from_keys(openai_api_key="o", prefer="anthropic")
    with pytest.raises(InputError, match="unknown chat provider"):
        chat.provider_from_keys(prefer="gemini")


def test_plan_summary_counts_from_one_for_people_and_zero_for_tools(plan):
    lines = chat.plan_summary(plan).splitlines()
    assert len(lines) == 1 + len(plan["scenes"])
    first = json.loads(lines[1])
    assert first["index"] == 0 and first["scene"] == 1 and first["n_frames"] == 100


# ---------------------------------------------------------------- footage: the user's clips and photos

BEACH, PHOTO, CAT = "clips/beach.mp4", "IMG_0042.jpg", "pets/cat photo.png"
FOOTAGE_CASES = [
    ("use beach.mp4 for scene 3", [{"op": "use_media", "scene": 2, "media": BEACH, "in_frame": None}]),
    ("put the beach clip in the second scene", [{"op": "use_media", "scene": 1, "media": BEACH, "in_frame": None}]),
    ("Use clips/beach.mp4 for scene 2 from frame 40", [{"op": "use_media", "scene": 1, "media": BEACH, "in_frame": 40}]),
    ("give scene three the Beach video", [{"op": "use_media", "scene": 2, "media": BEACH, "in_frame": None}]),
    ("for scene 2, use the beach clip", [{"op": "use_media", "scene": 1, "media": BEACH, "in_frame": None}]),
    ("scene 4 should use beach", [{"op": "use_media", "scene": 3, "media": BEACH, "in_frame": None}]),
    (
        "replace the clip of scene 2 with the beach clip starting at frame 30",
        [{"op": "use_media", "scene": 1, "media": BEACH, "in_frame": 30}],
    ),
    ("show the cat photo in the last scene", [{"op": "use_media", "scene": 3, "media": CAT, "in_frame": None}]),
    ("swap the clips of scenes 2 and 4", [{"op": "swap_sources", "a": 1, "b": 3}]),
    ("exchange the footage of the first and last scenes", [{"op": "swap_sources", "a": 0, "b": 3}]),
    ("swap scene 1's clip with scene 3's", [{"op": "swap_sources", "a": 0, "b": 2}]),
    ("switch the photos in scene 2 and scene 3", [{"op": "swap_sources", "a": 1, "b": 2}]),
    ("don't use IMG_0042.jpg", [{"op": "exclude_media", "media": PHOTO}]),
    ("do not use img_0042", [{"op": "exclude_media", "media": PHOTO}]),
    ("stop using the cat photo", [{"op": "exclude_media", "media": CAT}]),
    ("exclude the cat photo", [{"op": "exclude_media", "media": CAT}]),
    ("never show IMG_0042.jpg again.", [{"op": "exclude_media", "media": PHOTO}]),
    ("I don't want the beach clip anymore", [{"op": "exclude_media", "media": BEACH}]),
    ("use the cat photo again", [{"op": "include_media", "media": CAT}]),
    ("bring back the cat photo", [{"op": "include_media", "media": CAT}]),
    ("you can put IMG_0042.jpg back in", [{"op": "include_media", "media": PHOTO}]),
    (
        "use beach.mp4 for scene 3 and make scene 1 warmer",
        [
            {"op": "use_media", "scene": 2, "media": BEACH, "in_frame": None},
            {"op": "adjust_grade", "scene": 0, "temperature": 0.1},
        ],
    ),
]


@pytest.fixture
def footage():
    """The three-scene footage plan of footage_plans.py with a fourth scene (a copy of the third)."""
    from footage_plans import footage_plan

    return po.apply(footage_plan(), [po.InsertScene(at=3, n_frames=100)])


@pytest.mark.parametrize("message, want", FOOTAGE_CASES, ids=[c[0] for c in FOOTAGE_CASES])
def test_local_parser_footage_requests(footage, message, want):
    ops = chat.parse(footage, message)
    got = [{k: v for k, v in op.to_dict().items() if v is not None or k == "in_frame"} for op in ops]
    want = [{k: v for k, v in w.items() if v is not None or k == "in_frame"} for w in want]
    for g in got:
        if g["op"] != "use_media":
            g.pop("in_frame", None)
    assert got == want
    check_consistent(po.apply(footage, ops))


def test_bare_use_of_an_excluded_item_includes_it(footage):
    off = po.apply(footage, [po.ExcludeMedia(media=CAT)])
    assert chat.parse(off, "use the cat photo") == [po.IncludeMedia(media=CAT)]
    with pytest.raises(InputError, match="say which scene should use clips/beach.mp4"):
        chat.parse(footage, "use the beach clip")


def test_media_words_that_name_two_items_ask_which(footage):
    footage["media"].append({**footage["media"][0], "name": "pets/cat video.mp4", "media_id": "ffff" * 6})
    with pytest.raises(InputError, match="'cat' could be pets/cat photo.png or pets/cat video.mp4"):
        chat.parse(footage, "use the cat clip for scene 2")
    assert chat.parse(footage, "use the cat video for scene 2") == [po.UseMedia(scene=1, media="pets/cat video.mp4")]
    # A whole file name wins over a word of another's: "beach" is beach.mp4 itself.
    assert chat.parse(footage, "use beach for scene 2") == [po.UseMedia(scene=1, media=BEACH)]


def test_plans_without_media_parse_as_before(plan):
    assert chat.parse(plan, "swap 2 and 4") == [po.SwapScenes(a=1, b=3)]
    with pytest.raises(InputError, match="could not understand"):
        chat.parse(plan, "don't use IMG_0042.jpg")


def test_summary_and_tools_carry_the_footage(footage):
    lines = chat.plan_summary(footage).splitlines()
    assert lines[1].startswith("media: ") and "clips/beach.mp4" in lines[1]
    first = json.loads(lines[2])
    assert first["source"]["media"] == BEACH and first["source"]["runner_ups"] == [PHOTO, CAT]
    names = {t["name"] for t in chat.AnthropicProvider.tools(None)}  # type: ignore[arg-type]
    assert {"use_media", "swap_sources", "exclude_media", "include_media"} <= names


def test_chat_edit_on_a_store_history_shows_the_diff_then_undo_restores_exactly(tmp_path):
    from lookalike.coordinator.plan_history import StoreHistory
    from lookalike.coordinator.state import open_state
    from synth import tiny_analysis

    first = planner.make_plan(tiny_analysis({"tempo_bpm": 120.0}, cuts=(48, 96)), seed=3)
    state = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        project = state.create_project("acme", "remake", {})
        state.put_document(project.id, "plan", first)
        history = StoreHistory(state, project.id)
        seen = []
        got = chat.chat_edit(history, "make it feel more like a horror movie", confirm=lambda p: seen.append(p) or True)
        assert seen[0].version is None and seen[0].changes == got.changes and got.version == 2
        assert "music.prompt" in seen[0].reply() and history.get()["edit"]["changes"]
        assert chat.chat_edit(history, "and the last scene too", dry_run=True).version is None
        undone = chat.chat_edit(history, "undo that")
        assert undone.proposal.undo and undone.version == 3
        strip = lambda p: {k: v for k, v in p.items() if k not in po.META_KEYS}  # noqa: E731
        assert strip(history.get()) == strip(history.get(1))
        assert chat.chat_edit(history, "make scene 2 warmer").version == 4
        assert chat.chat_edit(history, "and scene 3 too").proposal.ops == [po.AdjustGrade(scene=2, temperature=0.1)]
    finally:
        state.close()
