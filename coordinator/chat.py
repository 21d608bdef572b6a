"""From a request in words to plan operations: `propose(plan, "make scene 3 warmer and slower")`.

Two ways in, one way out (a list of `plan_ops.PlanOp`):

- `parse`: a deterministic local parser for the common requests (grade, length, camera, order,
  transitions, prompts, voice lines, music, effects, providers, sound effects, and in a footage
  plan which clip or photo a scene shows). No network, no key.
- `AnthropicProvider` / `OpenAIProvider`: the official SDKs with tool (function) calling; each plan
  operation is one tool whose input schema comes from the operation's dataclass.

`propose` asks the provider when one is given and falls back to the local parser when the provider
fails (a bad key, a rate limit past the SDK's retries, a timeout, operations that do not fit the
plan). Keys are arguments: library code never reads the environment; the CLI or the coordinator's
settings pass them in (`provider_from_keys`).

People count scenes from 1 ("scene 1" is the plan's index 0); operations use plan indices.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lookalike.coordinator import plan_ops as po

from lookalike.errors import InputError, LookalikeError, ProviderError
from lookalike.obs import get_logger

log = get_logger("chat")

EXAMPLES = (
    "make scene 3 warmer and slower",
    "swap 2 and 4",
    "shorten scene 2 by 10 frames",
    "delete scene 5",
    "set the prompt of scene 2 to a red kite over the sea",
    "more contrast in scene 4",
    "pan left in scene 1",
    "use a dissolve into scene 3",
    "faster music",
    "voice line for scene 2: hello there",
)


@dataclass(frozen=True)
class Proposal:
    """What `propose_detailed` returns: the operations, who proposed them, and why a fallback."""

    ops: list[po.PlanOp]
    source: str  # "local", or a provider's name ("anthropic", "openai")
    fallback_reason: str | None = None


class ChatProvider(Protocol):
    """An LLM that turns a request into plan operations through tool calls."""

    name: str

    def propose(self, plan: Mapping[str, Any], message: str) -> list[po.PlanOp]:
        """The operations for `message`, or ProviderError (transient or permanent)."""
        ...


def propose(
    plan: Mapping[str, Any], message: str, *, provider: ChatProvider | None = None
) -> list[po.PlanOp]:
    """Plan operations for `message`: from `provider` when given (falling back to the local parser
    when it fails), else from the local parser. The operations are checked against `plan`."""
    return propose_detailed(plan, message, provider=provider).ops


def propose_detailed(
    plan: Mapping[str, Any], message: str, *, provider: ChatProvider | None = None
) -> Proposal:
    if not isinstance(message, str) or not message.strip():
        raise InputError("the request is empty", hint="say what to change, e.g. " + repr(EXAMPLES[0]))
    reason = None
    if provider is not None:
        try:
            ops = provider.propose(plan, message)
            if not ops:
                raise ProviderError(f"{provider.name} proposed no operation", transient=False)
            po.apply(plan, ops)  # operations that do not fit the plan are a failed proposal
            return Proposal(list(ops), provider.name)
        except LookalikeError as exc:
            reason = f"{provider.name}: {exc}"
            log.warning("chat_provider_failed", provider=provider.name, error=str(exc))
    try:
        ops = parse(plan, message)
    except InputError as exc:
        if reason:
            raise InputError(
                exc.message,
                hint=f"{exc.hint or ''}; the {provider.name if provider else ''} "
                f"provider failed too ({reason})".lstrip("; "),
            ) from exc
        raise
    return Proposal(ops, "local", reason)


# ================================================================ the local parser

_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve".split())
}
_ORDINALS = {
    w: i + 1
    for i, w in enumerate(
        "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth".split()
    )
}
_MORE = r"(?:much|a lot|lots|way|far|really|very)"
_LESS = r"(?:slightly|a bit|a little|a little bit|a touch|somewhat|a tad)"
_N = r"(\d+(?:\.\d+)?)"
_SCENE_LIST = r"(\d+(?:\+\d+)*)"
_CAMERA_WORDS = [
    (r"\bpan(?:s|ning)?\s+(?:to\s+the\s+)?left\b", "pan_left"),
    (r"\bpan(?:s|ning)?\s+(?:to\s+the\s+)?right\b", "pan_right"),
    (r"\btilt(?:s|ing)?\s+up\b", "tilt_up"),
    (r"\btilt(?:s|ing)?\s+down\b", "tilt_down"),
    (r"\bzoom(?:s|ing)?\s+in\b|\bpush(?:es)?\s+in\b|\bdolly in\b", "zoom_in"),
    (r"\bzoom(?:s|ing)?\s+out\b|\bpull(?:s)?\s+(?:back|out)\b|\bdolly out\b", "zoom_out"),
    (r"\bhand-?held\b|\bshaky\b", "handheld"),
    (r"\bstatic\b|\blocked[- ]off\b|\bstill camera\b|\bno camera (?:move|motion)\b|\btripod\b", "static"),
]
_EFFECT_WORDS = [
    (r"film grain|\bgrain(?:y)?\b|\bnoise\b", "film_grain"),
    (r"motion blur", "motion_blur"),
    (r"lens flares?|\bflares?\b", "lens_flare"),
    (r"particles|sparkles|\bdust\b|snow", "particles"),
    (r"depth of field|\bbokeh\b|shallow focus", "depth_of_field"),
    (r"stabili[sz](?:e|ation|ed)", "stabilization"),
    (r"vignett(?:e|ing)", "vignette"),
]
_PROVIDERS = ("local", "runway", "veo")
_SOUNDS = ("whoosh", "swoosh", "impact", "riser", "click", "boom", "hit", "thud", "chime", "pop")


@dataclass
class _Ctx:
    plan: Mapping[str, Any]
    n_scenes: int
    fps: float

    def scene(self, number: int) -> int:
        """0-based index for a scene number the user gave (counted from 1)."""
        if not 1 <= number <= self.n_scenes:
            raise InputError(
                f"there is no scene {number}: the plan has scenes 1-{self.n_scenes}",
                hint="`lookalike plan show DIR` lists them",
            )
        return number - 1

    def frames(self, amount: float, unit: str | None) -> int:
        if unit and unit.startswith("s"):
            return max(1, round(amount * self.fps))
        return round(amount)


def parse(plan: Mapping[str, Any], message: str) -> list[po.PlanOp]:
    """Operations for `message` from the local parser; InputError for what it cannot understand.

    The operations are checked against `plan` (scenes that exist, values that stay in range)."""
    scenes = plan.get("scenes") if isinstance(plan, Mapping) else None
    if not scenes:
        raise InputError("the plan has no scenes to edit")
    ctx = _Ctx(plan, len(scenes), po._fps(dict(plan)))
    text = message.strip()
    if not text:
        raise InputError("the request is empty", hint="say what to change, e.g. " + repr(EXAMPLES[0]))
    text, ops = _media_request(ctx, text)
    text, swap_ops = _swap_sources(ctx, text)
    ops.extend(swap_ops)
    head, free_ops = _free_text(ctx, text)
    for clause in _clauses(_normalize(ctx, head)):
        ops.extend(_clause(ctx, clause))
    ops.extend(free_ops)
    if not ops:
        raise InputError(
            f"could not understand {message!r}", hint="try e.g. " + "; ".join(repr(e) for e in EXAMPLES[:5])
        )
    po.apply(plan, ops)
    return ops


# Requests whose last part is free text (a prompt, a spoken line): matched on the original words,
# they take the rest of the message, so their text is never split at "and" or a full stop.
_PROMPT_RE = re.compile(
    r"(?:(?:set|change|make|replace)\s+)?(?:the\s+)?prompt\s+(?:of|for)\s+(?:the\s+)?scene\s+(\w+)\s*(?:to|:|=|as)\s*(.*)$"
    r"|scene\s+(\w+)\s+(?:should\s+show|shows|prompt\s*[:=])\s*(.*)$",
    re.I | re.S,
)
_VOICE_RE = re.compile(
    r"(?:add\s+(?:a\s+)?)?(?:voice[- ]?(?:over)?|narration|vo)(?:\s+line)?\s+(?:for|in|on|to)\s+(?:the\s+)?scene\s+(\w+)"
    r"(?:\s+at\s+" + _N + r"\s*s(?:ec(?:onds?)?)?)?\s*[:,]?\s*(.*)$"
    r"|scene\s+(\w+)\s+(?:says|narrat(?:es|ion)|voice[- ]?over)\s*[:,]?\s*(.*)$",
    re.I | re.S,
)
_INSERT_RE = re.compile(
    r"(?:add|insert)\s+(?:a\s+)?(?:new\s+)?scene\s+(before|after)\s+scene\s+(\w+)"
    r"(?:\s*,?\s*" + _N + r"\s*(frames?|s|sec(?:onds?)?)(?:\s+long)?)?\s*(?:[:,]|showing|with|of)?\s*(.*)$"
    r"|(?:add|insert|append)\s+(?:a\s+)?(?:new\s+)?scene\s+at\s+the\s+(start|beginning|end)"
    r"(?:\s*,?\s*" + _N + r"\s*(frames?|s|sec(?:onds?)?)(?:\s+long)?)?\s*(?:[:,]|showing|with|of)?\s*(.*)$",
    re.I | re.S,
)


def _scene_word(ctx: _Ctx, word: str) -> int:
    w = word.lower()
    if w in ("last", "final"):
        return ctx.n_scenes - 1
    if w in _ORDINALS:
        return ctx.scene(_ORDINALS[w])
    w = _NUMBER_WORDS.get(w, w)
    if not w.isdigit():
        raise InputError(f"{word!r} is not a scene number", hint="say e.g. 'scene 2'")
    return ctx.scene(int(w))


def _strip_quotes(s: str) -> str:
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'“”":
        s = s[1:-1]
    return s.strip().strip("“”").strip()


def _free_text(ctx: _Ctx, text: str) -> tuple[str, list[po.PlanOp]]:
    """(the part before a free-text request, the operations of that request)."""
    m = _PROMPT_RE.search(text)
    if m:
        number, prompt = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        prompt = _strip_quotes(prompt)
        if not prompt:
            raise InputError(
                "set_prompt.prompt: the new prompt is empty", hint="say what the scene should show"
            )
        return text[: m.start()], [po.SetPrompt(scene=_scene_word(ctx, number), prompt=prompt)]
    m = _VOICE_RE.search(text)
    if m:
        if m.group(1):
            number, at, line = m.group(1), m.group(2), m.group(3)
        else:
            number, at, line = m.group(4), None, m.group(5)
        line = _strip_quotes(line)
        if not line:
            raise InputError(
                "set_voice_line.text: the voice-over line is empty",
                hint="give the words after a colon, e.g. 'voice line for scene 2: hello'",
            )
        return text[: m.start()], [
            po.SetVoiceLine(scene=_scene_word(ctx, number), text=line, offset_s=float(at) if at else 0.0)
        ]
    m = _INSERT_RE.search(text)
    if m:
        if m.group(1):
            where, number, amount, unit, prompt = (
                m.group(1).lower(),
                m.group(2),
                m.group(3),
                m.group(4),
                m.group(5),
            )
            ref = _scene_word(ctx, number)
            at = ref if where == "before" else ref + 1
            like = ref
        else:
            where, amount, unit, prompt = m.group(6).lower(), m.group(7), m.group(8), m.group(9)
            at = ctx.n_scenes if where == "end" else 0
            like = ctx.n_scenes - 1 if where == "end" else 0
        n = (
            ctx.frames(float(amount), unit)
            if amount
            else int(
                ctx.plan["scenes"][like].get("n_frames")
                or (ctx.plan["scenes"][like]["end_frame"] - ctx.plan["scenes"][like]["start_frame"])
            )
        )
        prompt = _strip_quotes(prompt or "")
        return text[: m.start()], [po.InsertScene(at=at, n_frames=n, prompt=prompt or None, like=like)]
    return text, []


# ---------------------------------------------------------------- footage: the user's clips and photos

# Words of a file name that never name it alone: they are how people talk about any clip or scene.
_MEDIA_STOPWORDS = frozenset(
    "the a an and or of for in on to with from use using scene scenes shot shots clip clips photo photos "
    "picture pictures image images video videos footage file img dsc mov vid copy final edit new old "
    "first last again back frame frames".split()
)
_KIND = r"(?:\s+(?:clip|photo|picture|image|video|footage|file|shot|still|one))?"
_SCENE_REF = r"(?:the\s+)?(?:scene\s+(\w+)|(\w+)\s+scene)"
_FRAME = r"(?:\s*,?\s*(?:from|starting\s+(?:at|from)|at|beginning\s+at)\s+frame\s+(\d+))?"
_ANY_MEDIA = r"(?:the\s+|my\s+)?\x00(\d+)\x00" + _KIND


def _media_aliases(items: Sequence[Mapping[str, Any]]) -> tuple[dict[str, int], dict[str, list[int]]]:
    """({alias: item index}, {ambiguous word: item indices}) for the ways people name the items: the
    name, the file name, the file name without its extension, and a word of it that no other item has."""
    exact: dict[str, int] = {}
    words: dict[str, set[int]] = {}
    for i, it in enumerate(items):
        name = str(it.get("name") or "").lower()
        base = name.replace("\\", "/").rsplit("/", 1)[-1]
        stem = base.rsplit(".", 1)[0]
        for alias in (name, base, stem):
            if alias:
                exact.setdefault(alias, i)
        for w in re.split(r"[^a-z]+", stem):
            if len(w) >= 3 and w not in _MEDIA_STOPWORDS:
                words.setdefault(w, set()).add(i)
    aliases = dict(exact)
    ambiguous: dict[str, list[int]] = {}
    for w, owners in words.items():
        if w in exact:
            continue
        if len(owners) == 1:
            aliases[w] = next(iter(owners))
        else:
            ambiguous[w] = sorted(owners)
    return aliases, ambiguous


def _media_request(ctx: _Ctx, text: str) -> tuple[str, list[po.PlanOp]]:
    """(the message without its requests about media items, their operations).

    Matched on the original words (a file name holds dots and capitals the clause parser would
    split and fold). A plan without media leaves the message as it is."""
    items = po._media_items(ctx.plan)
    if not items:
        return text, []
    aliases, ambiguous = _media_aliases(items)
    names = sorted([*aliases, *ambiguous], key=len, reverse=True)
    found: list[str] = []

    def mark(m: re.Match[str]) -> str:
        found.append(m.group(0))
        return f"\x00{len(found) - 1}\x00"

    pattern = r"(?<![\w./-])(?:" + "|".join(re.escape(n) for n in names) + r")(?![\w/]|\.\w)"
    marked = re.sub(pattern, mark, text, flags=re.I)
    if not found:
        return text, []

    def item(token: str) -> str:
        said = found[int(token)]
        key = said.lower()
        if key in ambiguous:
            raise InputError(
                f"{said!r} could be {' or '.join(str(items[i]['name']) for i in ambiguous[key])}",
                hint="name the file, e.g. " + repr(str(items[ambiguous[key][0]]["name"])),
            )
        return str(items[aliases[key]]["name"])

    def scene(m: re.Match[str], g: int) -> int:
        return _scene_word(ctx, m.group(g) or m.group(g + 1))

    def use(m: re.Match[str], media_g: int, scene_g: int, frame_g: int) -> list[po.PlanOp]:
        frame = m.group(frame_g)
        return [
            po.UseMedia(scene=scene(m, scene_g), media=item(m.group(media_g)), in_frame=int(frame) if frame else None)
        ]

    def bare_use(m: re.Match[str]) -> list[po.PlanOp]:
        name = item(m.group(1))
        if po.find_media(ctx.plan, name).get("excluded"):
            return [po.IncludeMedia(media=name)]
        raise InputError(
            f"say which scene should use {name}", hint=f"e.g. 'use {name} for scene 2'"
        )

    neg = r"(?:don'?t|do\s+not|never|stop|quit|no\s+longer)\s+(?:use|using|show|showing|include|including|want)"
    rules: list[tuple[str, Callable[[re.Match[str]], list[po.PlanOp]]]] = [
        (
            r"\b(?:stop\s+excluding|un-?exclude|re-?include|bring\s+back|allow|restore|put\s+back)\s+" + _ANY_MEDIA
            + r"(?:\s+(?:again|back))?",
            lambda m: [po.IncludeMedia(media=item(m.group(1)))],
        ),
        (
            r"\b(?:i\s+)?" + neg + r"\s+" + _ANY_MEDIA + r"(?:\s+(?:again|anymore|any\s+more|at\s+all))?",
            lambda m: [po.ExcludeMedia(media=item(m.group(1)))],
        ),
        (
            r"\b(?:exclude|drop|skip|ban|leave\s+out|get\s+rid\s+of|remove|lose|no\s+more)\s+" + _ANY_MEDIA
            + r"(?:\s+(?:from\s+the\s+(?:video|edit|remake)|altogether|entirely))?",
            lambda m: [po.ExcludeMedia(media=item(m.group(1)))],
        ),
        (
            r"\b(?:you\s+can\s+)?(?:use|include|put|show)\s+" + _ANY_MEDIA + r"\s+(?:in\s+)?(?:again|back(?:\s+in)?)",
            lambda m: [po.IncludeMedia(media=item(m.group(1)))],
        ),
        (
            r"\b(?:use|put|place|show|take|try|swap\s+in|drop\s+in)\s+" + _ANY_MEDIA + _FRAME
            + r"\s+(?:for|in|on|as|into|at)\s+" + _SCENE_REF + _FRAME,
            lambda m: use(m, 1, 3, 2) if m.group(2) else use(m, 1, 3, 5),
        ),
        (
            r"\b(?:replace|swap)\s+(?:the\s+)?(?:clip|source|footage|picture|photo|shot)\s+(?:of|in)\s+"
            + _SCENE_REF + r"\s+(?:with|by|for)\s+" + _ANY_MEDIA + _FRAME,
            lambda m: use(m, 3, 1, 4),
        ),
        (
            r"\b(?:give|let)\s+" + _SCENE_REF + r"\s+(?:use\s+|show\s+)?" + _ANY_MEDIA + _FRAME,
            lambda m: use(m, 3, 1, 4),
        ),
        (
            r"\b(?:for|in)\s+" + _SCENE_REF + r"\s*,?\s+(?:use|show|put)\s+" + _ANY_MEDIA + _FRAME,
            lambda m: use(m, 3, 1, 4),
        ),
        (
            _SCENE_REF + r"\s*(?::|should\s+(?:use|show)|uses|shows|with)\s+" + _ANY_MEDIA + _FRAME,
            lambda m: use(m, 3, 1, 4),
        ),
        (r"\b(?:use|include)\s+" + _ANY_MEDIA, bare_use),
    ]
    ops: list[po.PlanOp] = []
    rest = marked
    for rx, build in rules:
        while True:
            m = re.search(rx, rest, re.I)
            if not m:
                break
            ops.extend(build(m))
            rest = rest[: m.start()] + " " + rest[m.end() :]
    rest = re.sub(r"\x00(\d+)\x00", lambda m: found[int(m.group(1))], rest)
    return (rest if ops else text), ops


_SWAP_SOURCES_RE = re.compile(
    r"\b(?:swap|exchange|switch|trade)\s+(?:the\s+)?(?:clips?|sources?|footage|media|pictures?|videos?|photos?|images?)"
    r"\s+(?:of|in|for|between|from|used\s+(?:in|by))\s+(?:the\s+)?(?:scenes?\s+)?(\w+)(?:\s+scene)?"
    r"\s+(?:and|with|&)\s+(?:the\s+)?(?:scene\s+)?(\w+)(?:\s+scenes?)?"
    r"|\b(?:swap|exchange|switch|trade)\s+(?:the\s+)?scene\s+(\w+)'s\s+(?:clip|source|footage|picture|photo|video|image)"
    r"\s+(?:with|and|for)\s+(?:the\s+(?:one|clip|source|footage)\s+of\s+|that\s+of\s+)?(?:the\s+)?scene\s+(\w+)(?:'s)?",
    re.I,
)


def _swap_sources(ctx: _Ctx, text: str) -> tuple[str, list[po.PlanOp]]:
    """(the message without its "swap the clips of scenes 2 and 4" requests, their operations)."""
    ops: list[po.PlanOp] = []
    while True:
        m = _SWAP_SOURCES_RE.search(text)
        if not m:
            return text, ops
        a, b = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        ops.append(po.SwapSources(a=_scene_word(ctx, a), b=_scene_word(ctx, b)))
        text = text[: m.start()] + " " + text[m.end() :]


def _normalize(ctx: _Ctx, text: str) -> str:
    t = " " + text.lower().replace("colour", "color").replace("’", "'") + " "
    t = re.sub(r"black\s+(?:and|&)\s+white|b\s*&\s*w|greyscale|grayscale", " monochrome ", t)
    t = re.sub(r"\b(" + "|".join(_ORDINALS) + r"|last|final)\s+scene\b", lambda m: f"scene {m.group(1)}", t)
    t = re.sub(
        r"\bscene\s+(" + "|".join(_ORDINALS) + r"|last|final)\b",
        lambda m: f"scene {_scene_word(ctx, m.group(1)) + 1}",
        t,
    )
    t = re.sub(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", lambda m: _NUMBER_WORDS[m.group(1)], t)
    t = re.sub(r"\bshot(s?)\b", r"scene\1", t)
    # Lists of scenes become one token ("scene 2+3+4") so that splitting at "and" keeps them whole.
    t = re.sub(
        r"\bscenes\s+(\d+(?:\s*(?:,|and|&|-|to|through)\s*\d+)+)",
        lambda m: "scene " + _scene_list(m.group(1)),
        t,
    )
    t = re.sub(
        r"\bscene\s+(\d+(?:\s*(?:,|and|&)\s*scene\s+\d+)+)",
        lambda m: "scene " + _scene_list(m.group(1).replace("scene", "")),
        t,
    )
    t = re.sub(r"\bscenes\b", "scene", t)
    return re.sub(r"\s+", " ", t).strip()


def _scene_list(text: str) -> str:
    numbers: list[int] = []
    for a, sep, b in re.findall(r"(\d+)(?:\s*(-|to|through)\s*(\d+))?", text):
        numbers.extend(range(int(a), int(b) + 1) if sep else [int(a)])
    return "+".join(str(n) for n in numbers)


def _clauses(text: str) -> list[str]:
    parts = re.split(r"[;!?\n]|\.(?!\d)|\bthen\b|\balso\b", text)
    return [p.strip(" ,") for p in parts if p.strip(" ,")]


def _scene_refs(ctx: _Ctx, text: str) -> list[int] | None:
    """Scene indices named in `text`, or None when it names none."""
    m = re.search(r"\bscene\s*#?\s*" + _SCENE_LIST, text)
    if not m:
        return None
    return [ctx.scene(int(n)) for n in m.group(1).split("+")]


def _intensity(text: str) -> float:
    if re.search(r"\b" + _MORE + r"\b", text):
        return 2.0
    if re.search(r"\b" + _LESS + r"\b", text):
        return 0.5
    return 1.0


_MUSIC = r"\b(?:music|tempo|bpm|beat|soundtrack|song)\b"


def _clause(ctx: _Ctx, clause: str) -> list[po.PlanOp]:
    ops: list[po.PlanOp] = []
    rest = clause

    def take(pattern: str, build: Callable[[re.Match[str]], list[po.PlanOp]]) -> None:
        nonlocal rest
        while True:
            m = re.search(pattern, rest)
            if not m:
                return
            ops.extend(build(m))
            rest = (rest[: m.start()] + " " + rest[m.end() :]).strip()

    # Whole-clause patterns first: they hold "and" and numbers that are not scene references.
    take(
        r"\bswap\s+(?:scene\s+)?(\d+)\s*(?:\+|\s(?:and|with|&)\s)\s*(?:scene\s+)?(\d+)",
        lambda m: [po.SwapScenes(a=ctx.scene(int(m.group(1))), b=ctx.scene(int(m.group(2))))],
    )
    take(
        r"\bmove\s+scene\s+(\d+)\s+(?:to\s+(?:the\s+)?(start|beginning|end)|to\s+(?:position\s+)?(\d+)|(before|after)\s+scene\s+(\d+))",
        lambda m: [_move(ctx, m)],
    )
    take(
        r"\b(?:delete|remove|drop)\s+scene\s+" + _SCENE_LIST,
        lambda m: [
            po.DeleteScene(scene=i)
            for i in sorted(_scene_refs(ctx, "scene " + m.group(1)) or [], reverse=True)
        ],
    )
    take(
        r"\b(?:use\s+|add\s+|with\s+)?(?:a\s+)?(\d+)?\s*(?:-?\s*(frames?|s|sec(?:onds?)?)\s+)?(dissolve|cross-?fade|fade|hard cut|cut)"
        r"\s+(?:in)?to\s+(?:the\s+)?scene\s+(\d+)(?:\s+(?:over|of|lasting)\s+"
        + _N
        + r"\s*(frames?|s|sec(?:onds?)?))?",
        lambda m: [_transition(ctx, m)],
    )
    take(
        r"\bfade\s+in\b(?:\s+from\s+black)?(?:\s+(?:at\s+the\s+start|(?:on|in)\s+scene\s+1))?",
        lambda m: [po.SetTransition(scene=0, kind="fade", n_frames=max(2, round(ctx.fps / 2)))],
    )
    if re.search(_MUSIC, rest):
        ops.extend(_music(ctx, rest))
        rest = ""
    if not rest.strip():
        return ops

    scenes: list[int] | None = None
    named_any = False
    for part in re.split(r",|\band\b|\bwith\b(?=.*\bscene\b)", rest):
        part = part.strip()
        if not part:
            continue
        refs = _scene_refs(ctx, part)
        if refs is not None:
            scenes, named_any = refs, True
        got = _part(ctx, part, scenes)
        if got is None:
            if refs is not None or part in ("make", "please", "it", "make it"):
                continue
            raise InputError(
                f"could not understand {part!r}", hint="try e.g. " + "; ".join(repr(e) for e in EXAMPLES[:5])
            )
        ops.extend(got)
    if not ops and named_any:
        raise InputError(
            f"{clause!r} names a scene but no change", hint="say what to change, e.g. 'scene 2 warmer'"
        )
    return ops


def _move(ctx: _Ctx, m: re.Match[str]) -> po.PlanOp:
    src = ctx.scene(int(m.group(1)))
    if m.group(2):
        to = 0 if m.group(2) in ("start", "beginning") else ctx.n_scenes - 1
    elif m.group(3):
        to = ctx.scene(int(m.group(3)))
    else:
        ref = ctx.scene(int(m.group(5)))
        to = ref if m.group(4) == "before" else ref + 1
        if src < to:
            to -= 1
    return po.MoveScene(scene=src, to=to)


def _transition(ctx: _Ctx, m: re.Match[str]) -> po.PlanOp:
    kind = m.group(3).replace("-", "")
    kind = {"crossfade": "dissolve", "hard cut": "cut"}.get(kind, kind)
    scene = ctx.scene(int(m.group(4)))
    if m.group(5):
        n = ctx.frames(float(m.group(5)), m.group(6))
    elif m.group(1):
        n = ctx.frames(float(m.group(1)), m.group(2))
    else:
        n = max(2, round(ctx.fps / 2))  # half a second
    return po.SetTransition(scene=scene, kind=kind, n_frames=n if kind != "cut" else 0)


_MUSIC_PROVIDERS = ("local", "elevenlabs")


def _music(ctx: _Ctx, text: str) -> list[po.PlanOp]:
    k = _intensity(text)
    m = re.search(r"\b(?:use|with|from|via|by|switch to|make it with)\b.*\b(" + "|".join(_MUSIC_PROVIDERS) + r")\b", text)
    if m:
        return [po.SetMusic(provider=m.group(1))]
    m = re.search(r"(?:tempo|bpm)\s*(?:of|to|=|at)?\s*" + _N + r"|" + _N + r"\s*bpm", text)
    if m:
        return [po.SetMusic(tempo_bpm=float(m.group(1) or m.group(2)))]
    m = re.search(
        r"\bkey\s+(?:of\s+|to\s+)?([a-g])\s*(#|b|sharp|flat)?\s*(major|minor)|\bin\s+([a-g])\s*(#|sharp|flat)?\s*(major|minor)",
        text,
    )
    if m:
        note, acc, mode = (
            (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(4), m.group(5), m.group(6))
        )
        acc = {"sharp": "#", "flat": "b", None: ""}.get(acc, acc)
        return [po.SetMusic(key=f"{note.upper()}{acc} {mode}")]
    m = re.search(_N + r"\s*%\s*(faster|slower|quicker)", text)
    if m:
        f = 1 + float(m.group(1)) / 100
        return [po.SetMusic(tempo_factor=round(f if m.group(2) != "slower" else 1 / f, 4))]
    if re.search(r"\b(?:faster|quicker|speed up|up-?tempo|more energetic)\b", text):
        return [po.SetMusic(tempo_factor=round(1 + 0.1 * k, 4))]
    if re.search(r"\b(?:slower|slow down|calmer|more relaxed)\b", text):
        return [po.SetMusic(tempo_factor=round(1 / (1 + 0.1 * k), 4))]
    lufs = (ctx.plan.get("music") or {}).get("lufs")
    lufs = -14.0 if lufs is None else float(lufs)
    if re.search(r"\blouder\b", text):
        return [po.SetMusic(lufs=min(-6.0, lufs + 2.0 * k))]
    if re.search(r"\b(?:quieter|softer)\b", text):
        return [po.SetMusic(lufs=max(-40.0, lufs - 2.0 * k))]
    raise InputError(
        f"could not understand what to change about the music in {text!r}",
        hint="try 'faster music', 'tempo 128', 'music in A minor', 'louder music', 'music from elevenlabs'",
    )


def _need_scenes(scenes: list[int] | None, what: str) -> list[int]:
    if scenes is None:
        raise InputError(f"say which scene to {what}", hint=f"e.g. 'scene 2 {what}'")
    return scenes


def _grade_op(scenes: list[int] | None, **delta: float) -> list[po.PlanOp]:
    if scenes is None:
        return [po.AdjustGrade(scene=None, **delta)]
    return [po.AdjustGrade(scene=i, **delta) for i in scenes]


def _part(ctx: _Ctx, part: str, scenes: list[int] | None) -> list[po.PlanOp] | None:
    """Operations for one short phrase ("warmer", "shorten scene 2 by 10 frames"), None if none."""
    k = _intensity(part)
    # Lengths with numbers first: "shorten ... by 10 frames", "make scene 2 3 seconds long".
    m = re.search(
        r"\b(shorten|shorter|trim|cut|lengthen|longer|extend|slow(?:er)?|fast(?:er)?)\b.*?\bby\s+"
        + _N
        + r"\s*(%|frames?|s\b|sec(?:onds?)?)",
        part,
    )
    if m:
        sign = -1 if m.group(1) in ("shorten", "shorter", "trim", "cut", "fast", "faster") else 1
        if m.group(3) == "%":
            f = 1 + sign * float(m.group(2)) / 100
            return [po.SetDuration(scene=i, factor=f) for i in _need_scenes(scenes, "change the length of")]
        n = ctx.frames(float(m.group(2)), m.group(3))
        return [
            po.SetDuration(scene=i, delta_frames=sign * n)
            for i in _need_scenes(scenes, "change the length of")
        ]
    m = re.search(_N + r"\s*%\s*(slower|longer|faster|shorter)", part)
    if m:
        f = 1 + float(m.group(1)) / 100
        f = f if m.group(2) in ("slower", "longer") else 1 / f
        return [
            po.SetDuration(scene=i, factor=round(f, 4)) for i in _need_scenes(scenes, "change the length of")
        ]
    m = re.search(
        r"(?:\bto\b|\bbe\b|\blast\b|^|\s)\s*" + _N + r"\s*(frames?|s\b|sec(?:onds?)?)(?:\s+long)?\s*$", part
    )
    if m and re.search(r"\b(?:long|last|lasts|make|set|to|be|length|duration)\b", part):
        n = ctx.frames(float(m.group(1)), m.group(2))
        return [po.SetDuration(scene=i, n_frames=n) for i in _need_scenes(scenes, "change the length of")]

    ops: list[po.PlanOp] = []
    for pattern, motion in _CAMERA_WORDS:
        if re.search(pattern, part):
            ops += [po.SetCamera(scene=i, motion=motion) for i in _need_scenes(scenes, "move the camera in")]
            return ops

    for pattern, effect in _EFFECT_WORDS:
        if re.search(pattern, part):
            off = re.search(r"\b(?:no|remove|without|drop|less|turn off|get rid of)\b", part)
            strength = (
                0.0 if off and not re.search(r"\bless\b", part) else (0.25 if off else min(1.0, 0.5 * k))
            )
            targets = [None] if scenes is None else scenes
            return [po.SetEffect(scene=i, effect=effect, strength=strength) for i in targets]

    m = re.search(r"\b(?:use|with|render|via|on|switch to)\b.*\b(" + "|".join(_PROVIDERS) + r")\b", part)
    if m:
        targets = [None] if scenes is None else scenes
        return [po.SetProvider(scene=i, provider=m.group(1)) for i in targets]

    m = re.search(
        r"\b(?:add|put|play)\s+(?:a\s+|an\s+)?("
        + "|".join(_SOUNDS)
        + r")(?:\s+sound)?(?:\s+at\s+"
        + _N
        + r"\s*s)?",
        part,
    )
    if m:
        return [
            po.AddSfx(scene=i, sound=m.group(1), offset_s=float(m.group(2) or 0.0))
            for i in _need_scenes(scenes, f"add a {m.group(1)} to")
        ]

    m = re.search(
        r"\b(?:remove|clear|delete|no)\s+(?:the\s+)?(?:voice[- ]?(?:over)?|narration)(?:\s+lines?)?", part
    )
    if m:
        return [po.ClearVoiceLines(scene=i) for i in _need_scenes(scenes, "clear the voice-over of")]

    if re.search(r"\bmonochrome\b", part):
        targets = [None] if scenes is None else scenes
        return [po.SetGrade(scene=i, saturation=0.0) for i in targets]
    grade_words = [
        (
            r"\b(?:warmer|warm(?:s)? (?:it )?up|more (?:warm|orange|golden|yellow)|warm)\b",
            {"temperature": 0.1},
        ),
        (
            r"\b(?:cooler|colder|cool(?:s)? (?:it )?down|more (?:blue|cool)|bluer|cool)\b",
            {"temperature": -0.1},
        ),
        (r"\b(?:brighter|lighter|brighten|more exposure|lift|bright)\b", {"exposure": 0.3}),
        (r"\b(?:darker|darken|dimmer|moodier|less exposure|dark)\b", {"exposure": -0.3}),
        (r"\b(?:more contrast|higher contrast|punchier|contrastier|punchy|crisper)\b", {"contrast": 0.2}),
        (r"\b(?:less contrast|lower contrast|flatter|softer|flat)\b", {"contrast": -0.2}),
        (
            r"\b(?:more saturat\w*|more colou?rful|more vivid|more vibrant|saturate|vivid|vibrant|colou?rful)\b",
            {"saturation": 0.2},
        ),
        (
            r"\b(?:less saturat\w*|desaturat\w*|more muted|muted|washed out|less colou?rful)\b",
            {"saturation": -0.2},
        ),
    ]
    delta: dict[str, float] = {}
    for pattern, d in grade_words:
        if re.search(pattern, part):
            for key, v in d.items():
                delta.setdefault(key, round(v * k, 6))
    if delta:
        ops += _grade_op(scenes, **delta)

    if re.search(r"\b(?:slower|longer|lengthen|extend|linger)\b", part):
        ops += [
            po.SetDuration(scene=i, factor=round(1 + 0.25 * k, 4))
            for i in _need_scenes(scenes, "make slower")
        ]
    elif re.search(r"\b(?:faster|shorter|shorten|quicker|snappier|tighter)\b", part):
        ops += [
            po.SetDuration(scene=i, factor=round(1 / (1 + 0.25 * k), 4))
            for i in _need_scenes(scenes, "make faster")
        ]
    return ops or None


# ================================================================ LLM providers

SYSTEM_PROMPT = (
    "You edit the plan of a video remake. The plan has one entry per scene; the user numbers scenes "
    "from 1, but every tool takes the scene's 0-based index (scene 1 is index 0). Express the user's "
    "request as calls to the tools, one call per change, in the order they should apply (indices "
    "refer to the plan as it is before any change; after a swap, insert or delete, later calls see "
    "the new order). Use adjust_grade for relative colour changes ('warmer' is temperature +0.1, "
    "'brighter' exposure +0.3, 'more contrast' contrast +0.2) and set_duration with factor 1.25 for "
    "'slower'. In a plan with media (the user's clips and photos), use_media, swap_sources, "
    "exclude_media and include_media change what a scene shows; name items as the media list does. "
    "If the request is not about the plan, call no tool and say why."
)


def plan_summary(plan: Mapping[str, Any]) -> str:
    """A compact description of the plan for a model: what it needs to pick scenes and values."""
    fmt = plan.get("format") or {}
    lines = [
        f"format: {fmt.get('width')}x{fmt.get('height')} at {fmt.get('fps')} fps, "
        f"{fmt.get('n_frames')} frames; music: {json.dumps(plan.get('music') or {})}"
    ]
    media = plan.get("media") or []
    if media:
        lines.append(
            "media: "
            + json.dumps(
                [
                    {k: m.get(k) for k in ("name", "kind", "n_frames", "fps", "excluded")}
                    for m in media
                ]
            )
        )
    for i, s in enumerate(plan.get("scenes") or []):
        cam = s.get("camera") or {}
        n = s.get("n_frames") or (s["end_frame"] - s["start_frame"])
        src = s.get("source")
        extra = (
            {
                "source": {
                    k: src.get(k) for k in ("kind", "media", "in_frame", "out_frame", "speed", "why")
                    if k in src
                }
                | {"runner_ups": [r.get("media") for r in src.get("runner_ups") or []]}
            }
            if isinstance(src, Mapping)
            else {}
        )
        lines.append(
            json.dumps(
                {
                    "index": i,
                    "scene": i + 1,
                    "n_frames": n,
                    "seconds": round(n / (fmt.get("fps") or 24.0), 3),
                    "transition_in": (s.get("transition_in") or {}).get("kind"),
                    "camera": cam.get("motion"),
                    "speed": cam.get("speed"),
                    "grade": s.get("grade"),
                    "prompt": s.get("prompt"),
                    "provider": s.get("provider"),
                    "effects": s.get("effects") or [],
                    "voice_lines": [v.get("text") for v in (s.get("audio") or {}).get("voice_lines") or []],
                    **extra,
                }
            )
        )
    return "\n".join(lines)


def _ops_from_calls(provider: str, calls: Sequence[tuple[str, Any]]) -> list[po.PlanOp]:
    ops = []
    for name, args in calls:
        if isinstance(args, str):
            try:
                args = json.loads(args or "{}")
            except json.JSONDecodeError as exc:
                raise ProviderError(
                    f"{provider} sent arguments for {name} that are not JSON: {exc}", transient=False
                ) from exc
        try:
            ops.append(po.op_from_args(name, args))
        except InputError as exc:
            raise ProviderError(
                f"{provider} proposed an operation that does not fit: {exc}", transient=False
            ) from exc
    return ops


def _map_sdk_error(provider: str, setting: str, exc: Exception, sdk: Any) -> ProviderError:
    """An SDK exception as a ProviderError: transient (retry later) or permanent (fix something)."""
    status = getattr(exc, "status_code", None)
    if isinstance(exc, (sdk.AuthenticationError, sdk.PermissionDeniedError)):
        return ProviderError(
            f"{provider} rejected the API key ({status})", transient=False, hint=f"check {setting}"
        )
    if isinstance(exc, sdk.RateLimitError):
        return ProviderError(
            f"{provider} is rate limiting this key (429) after the client's retries",
            transient=True,
            hint="wait and try again, or raise the key's limits",
        )
    if isinstance(exc, sdk.APITimeoutError):
        return ProviderError(f"{provider} did not answer in time", transient=True, hint="try again")
    if isinstance(exc, sdk.APIConnectionError):
        return ProviderError(
            f"cannot reach {provider}: {exc}", transient=True, hint="check the network or base URL"
        )
    if isinstance(exc, sdk.APIStatusError):
        transient = status is not None and (status >= 500 or status in (408, 409))
        return ProviderError(f"{provider} answered {status}: {exc}", transient=transient)
    return ProviderError(f"{provider} failed: {type(exc).__name__}: {exc}", transient=False)


class AnthropicProvider:
    """Claude through the Messages API with tool use (the official `anthropic` SDK)."""

    name = "anthropic"
    setting = "ANTHROPIC_API_KEY"

    def __init__(
        self,
        api_key: str,
        *,
        model: str = "claude-sonnet-5",
        base_url: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        max_tokens: int = 1024,
    ) -> None:
        if not api_key:
            raise ProviderError("no Anthropic API key was given", transient=False, hint=f"set {self.setting}")
        try:
            import anthropic
        except ImportError as exc:  # pragma: no cover - the 'providers' extra is missing
            raise ProviderError(
                "the anthropic package is not installed",
                transient=False,
                hint="pip install 'lookalike[providers]'",
            ) from exc
        self._sdk = anthropic
        self.model, self.max_tokens = model, max_tokens
        self._client = anthropic.Anthropic(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=max_retries
        )

    def tools(self) -> list[dict[str, Any]]:
        return po.tool_schemas()

    def propose(self, plan: Mapping[str, Any], message: str) -> list[po.PlanOp]:
        try:
            # The SDK types its arguments with TypedDicts; ours are the same shapes as plain dicts.
            create: Any = self._client.messages.create
            reply = create(
                model=self.model,
                max_tokens=self.max_tokens,
                system=SYSTEM_PROMPT + "\n\nThe plan:\n" + plan_summary(plan),
                messages=[{"role": "user", "content": message}],
                tools=self.tools(),
                tool_choice={"type": "auto"},
            )
        except self._sdk.APIError as exc:
            raise _map_sdk_error("Anthropic", self.setting, exc, self._sdk) from exc
        calls = [(b.name, b.input) for b in reply.content if getattr(b, "type", None) == "tool_use"]
        if not calls:
            said = " ".join(
                getattr(b, "text", "") for b in reply.content if getattr(b, "type", None) == "text"
            )
            raise ProviderError(f"Anthropic proposed no operation: {said.strip()[:300]}", transient=False)
        return _ops_from_calls("Anthropic", calls)


class OpenAIProvider:
    """A GPT model through Chat Completions with function tools (the official `openai` SDK)."""

    name = "openai"
    setting = "OPENAI_API_KEY"

    def __init__(
        self,
        api_key: str,
        *,
        model: str = "gpt-4.1",
        base_url: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 2,
    ) -> None:
        if not api_key:
            raise ProviderError("no OpenAI API key was given", transient=False, hint=f"set {self.setting}")
        try:
            import openai
        except ImportError as exc:  # pragma: no cover - the 'providers' extra is missing
            raise ProviderError(
                "the openai package is not installed",
                transient=False,
                hint="pip install 'lookalike[providers]'",
            ) from exc
        self._sdk = openai
        self.model = model
        self._client = openai.OpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=max_retries
        )

    def tools(self) -> list[dict[str, Any]]:
        return [
            {
                "type": "function",
                "function": {
                    "name": t["name"],
                    "description": t["description"],
                    "parameters": t["input_schema"],
                },
            }
            for t in po.tool_schemas()
        ]

    def propose(self, plan: Mapping[str, Any], message: str) -> list[po.PlanOp]:
        try:
            create: Any = self._client.chat.completions.create
            reply = create(
                model=self.model,
                messages=[
                    {"role": "system", "content": SYSTEM_PROMPT + "\n\nThe plan:\n" + plan_summary(plan)},
                    {"role": "user", "content": message},
                ],
                tools=self.tools(),
                tool_choice="auto",
            )
        except self._sdk.APIError as exc:
            raise _map_sdk_error("OpenAI", self.setting, exc, self._sdk) from exc
        if not reply.choices:
            raise ProviderError("OpenAI answered with no choices", transient=True)
        msg = reply.choices[0].message
        calls = [
            (c.function.name, c.function.arguments)
            for c in (msg.tool_calls or [])
            if getattr(c, "type", "function") == "function"
        ]
        if not calls:
            raise ProviderError(
                f"OpenAI proposed no operation: {(msg.content or '').strip()[:300]}", transient=False
            )
        return _ops_from_calls("OpenAI", calls)


def provider_from_keys(
    *,
    anthropic_api_key: str | None = None,
    openai_api_key: str | None = None,
    prefer: str | None = None,
    anthropic_base_url: str | None = None,
    openai_base_url: str | None = None,
    model: str | None = None,
    max_retries: int = 2,
    timeout_s: float = 60.0,
) -> ChatProvider | None:
    """The provider a configuration asks for: `prefer` ("anthropic", "openai", "local") or, by
    default, Anthropic when its key is set, else OpenAI when its key is set, else None (local)."""
    if prefer not in (None, "auto", "anthropic", "openai", "local"):
        raise InputError(f"unknown chat provider {prefer!r}", hint="use anthropic, openai, local or auto")
    if prefer == "local":
        return None
    extra: dict[str, Any] = {"model": model} if model else {}
    if prefer == "anthropic" or (prefer in (None, "auto") and anthropic_api_key):
        if not anthropic_api_key:
            raise ProviderError(
                "the anthropic chat provider was chosen but no key is set",
                transient=False,
                hint="set ANTHROPIC_API_KEY",
            )
        return AnthropicProvider(
            anthropic_api_key,
            base_url=anthropic_base_url,
            max_retries=max_retries,
            timeout_s=timeout_s,
            **extra,
        )
    if prefer == "openai" or (prefer in (None, "auto") and openai_api_key):
        if not openai_api_key:
            raise ProviderError(
                "the openai chat provider was chosen but no key is set",
                transient=False,
                hint="set OPENAI_API_KEY",
            )
        return OpenAIProvider(
            openai_api_key, base_url=openai_base_url, max_retries=max_retries, timeout_s=timeout_s, **extra
        )
    return None
