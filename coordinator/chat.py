"""From a request in words to plan operations: `propose(plan, "make scene 3 warmer and slower")`.

Two ways in, one way out (a list of `plan_ops.PlanOp`):

- `parse`: a deterministic local parser for the everyday requests (grade, length, camera, order,
  transitions, prompts, voice lines, music, effects, providers, sound effects, moods, and in a
  footage plan which clip or photo a scene shows). No network, no key.
- `AnthropicProvider` / `OpenAIProvider`: the official SDKs with tool (function) calling; each plan
  operation is one tool whose input schema comes from the operation's dataclass. They get the same
  tools, the plan's scene summaries and the conversation so far.

`propose` asks the provider when one is given and falls back to the local parser when the provider
fails (a bad key, a rate limit past the SDK's retries, a timeout, operations that do not fit the
plan); the proposal says so (`Proposal.fallback_reason`, `Proposal.reply`). Keys are arguments:
library code never reads the environment; the CLI or the coordinator's settings pass them in
(`provider_from_keys`). `chat_edit` is the whole turn over a plan history: propose, show the diff,
apply (or undo), and record the turn so that the next one can say "and scene 4 too".

People count scenes from 1 ("scene 1" is the plan's index 0); operations use plan indices.

What the local parser understands
---------------------------------

Scenes: "scene 2", "scenes 2 to 4", "the second scene", "the last scene", "the first two scenes",
"the last 3 scenes", "the first and last scenes", "the penultimate scene", "the opening shot",
"the scene with the cat" / "the cat scene" (words of the scene's prompt, its footage's file name,
its on-screen text, and the analysis' caption, objects and people when the caller passes it),
"every scene", "the whole thing", "everything". No scene named: grade and effects go to every
scene; lengths need a scene, except "make it faster" (every scene).

Grade (adjust_grade, relative; "a bit" halves, "a lot" doubles):

    warmer / warm / golden             temperature +0.1
    cooler / colder / bluer            temperature -0.1
    brighter / lighter / brighten      exposure +0.3
    darker / dimmer / darken           exposure -0.3
    moodier / moody                    exposure -0.2, contrast +0.15, saturation -0.1
    punchier / more contrast(y)        contrast +0.2
    flatter / less contrast / softer   contrast -0.2
    washed out / faded                 saturation -0.2, contrast -0.15
    more saturated / vivid / vibrant   saturation +0.2
    desaturated / muted / duller       saturation -0.2
    black and white / monochrome       set_grade saturation 0 ("in colour again": 1)

Lengths (set_duration): "twice as long" (factor 2), "half as long", "3 times as long", "a second
shorter", "2 seconds longer", "10 frames shorter", "by 10 frames", "by 20%", "3 s", "3 seconds
long", "40 frames"; "slower"/"longer" factor 1.25, "faster"/"shorter"/"snappier" 1/1.25.

Transitions (set_transition on the later scene): "a dissolve between scene 1 and 2", "crossfade
from the second to the third scene", "dissolve into scene 3 over 20 frames", "a slow dissolve"
(1 s), "a quick fade" (1/4 s), "dissolves between all scenes", "fade in".

Effects (set_effect): film grain, motion blur, lens flare, particles/snow/dust, depth of field /
bokeh, stabilization, vignette; "a little" 0.25, plain 0.5, "more" 0.75, "a lot"/"strong" 1.0,
"no"/"remove" 0.

Music (set_music): tempo ("faster music", "speed up the music a bit", "tempo 128", "10% slower"),
level ("louder", "quieter", "turn the music down", "music at -20 LUFS"), key ("in A minor"), mood
("sadder music", "spooky music", "jazzy music": the provider's prompt), provider ("elevenlabs").

Voice (set_voice_line): "voice line for scene 2: hello", "add a voice over saying hello world in
scene 1", 'narrate "welcome home" over the last scene'; no scene named: the first scene.

Conversation: "undo that" (the plan history's undo, exact), "and scene 4 too" / "same for the
last scene" (the previous edit's scene operations on other scenes), "again" / "even more".
Several requests in one sentence split at "and", commas, "then" and full stops.

Moods and genres (presets; "a bit" halves and "a lot" doubles every change; music and pacing only
when no scene is named). Grade: adjust_grade on the scenes; music: set_music tempo_factor and mood;
pacing: set_duration factor on every scene; effects: set_effect strengths.

    preset     words                               grade                               music                          pacing  effects
    horror     horror, scary, creepy, spooky       exp -0.4 con +0.3 sat -0.4 temp -0.15  x0.85 "dark, tense horror ..."   x1.15   film_grain 0.4, vignette 0.6
    dreamy     dreamy, dreamlike, ethereal, hazy   exp +0.2 con -0.2 sat -0.1 temp +0.05  x0.9 "dreamy ambient pads ..."   x1.2    depth_of_field 0.5, lens_flare 0.3
    upbeat     upbeat, energetic, happy, fun       exp +0.15 con +0.1 sat +0.25 temp +0.05 x1.15 "upbeat, energetic ..."   x0.85   -
    noir       noir, film noir, detective          black and white, exp -0.2 con +0.4     x0.9 "film noir, smoky jazz ..." x1.1    film_grain 0.5, vignette 0.5
    vintage    vintage, retro, old film, nostalgic con -0.1 sat -0.25 temp +0.15          "vintage, warm lo-fi ..."      -       film_grain 0.6, vignette 0.3
    cinematic  cinematic, epic, filmic             exp -0.1 con +0.15 sat -0.05           "cinematic orchestral ..."     x1.1    depth_of_field 0.3, vignette 0.2
    calm       calm, relaxed, peaceful, chill      con -0.1 sat -0.05 temp +0.05          x0.85 "calm, gentle piano ..."   x1.2    -
    sad        sad, melancholic, somber, gloomy    exp -0.15 sat -0.3 temp -0.1           x0.85 "melancholic, slow ..."    x1.15   -

`PRESETS` holds the exact values. Typos of known words ("warmr", "dissolv") are read as the known
word and the proposal's notes say so. What it cannot read it refuses with the words it did not
know and the closest words and requests it does know.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
    "make the whole thing darker and more contrasty",
    "make the second scene twice as long",
    "use a dissolve between scene 1 and 2",
    "make it feel more like a horror movie",
    "remove the last scene",
    "add a voice over saying hello world in scene 1",
    "add a little film grain to everything",
    "make the music quieter",
    "undo that",
    "and scene 4 too",
)


@dataclass(frozen=True)
class Proposal:
    """What `propose_detailed` returns: the operations, who proposed them, why a fallback, and how
    the request was read (`notes`: typos read as known words, presets, defaults)."""

    ops: list[po.PlanOp]
    source: str  # "local", or a provider's name ("anthropic", "openai")
    fallback_reason: str | None = None
    notes: tuple[str, ...] = ()
    undo: bool = False  # "undo that": the caller takes back the last edit (PlanHistory.undo)

    @property
    def targets(self) -> list[int]:
        """The scenes (0-based) the operations name, in order; what "and scene 4 too" replaces."""
        out: list[int] = []
        for op in self.ops:
            scene = getattr(op, "scene", None)
            if isinstance(scene, int) and scene not in out:
                out.append(scene)
        return out

    def reply(self) -> str:
        """The answer in words: what will change, who read the request, and any fallback."""
        lines = []
        if self.fallback_reason:
            lines.append(f"note: {self.fallback_reason}; used the offline parser instead")
        lines.extend(f"note: {n}" for n in self.notes)
        if self.undo:
            lines.append("taking back the last edit")
        else:
            lines.append(f"operations ({self.source}):")
            lines.extend(f"  {k}. {op.describe()}" for k, op in enumerate(self.ops, 1))
        return "\n".join(lines)


class ChatProvider(Protocol):
    """An LLM that turns a request into plan operations through tool calls."""

    name: str

    def propose(
        self, plan: Mapping[str, Any], message: str, conversation: Sequence[Mapping[str, Any]] = ()
    ) -> list[po.PlanOp]:
        """The operations for `message` (after `conversation`'s turns), or ProviderError."""
        ...


def propose(
    plan: Mapping[str, Any],
    message: str,
    *,
    provider: ChatProvider | None = None,
    conversation: Sequence[Mapping[str, Any]] | None = None,
    analysis: Mapping[str, Any] | None = None,
) -> list[po.PlanOp]:
    """Plan operations for `message`: from `provider` when given (falling back to the local parser
    when it fails), else from the local parser. The operations are checked against `plan`.

    "undo that" has no operations: it is InputError here (use `chat_edit` or PlanHistory.undo)."""
    got = propose_detailed(plan, message, provider=provider, conversation=conversation, analysis=analysis)
    if got.undo:
        raise InputError(
            f"{message.strip()!r} takes back the last edit, which is not a plan operation",
            hint="use `lookalike plan edit DIR --undo` (or chat.chat_edit, which undoes)",
        )
    return got.ops


def _turns(plan: Mapping[str, Any], conversation: Sequence[Mapping[str, Any]] | None) -> list[dict]:
    """The conversation so far: as given, else the plan's own last edit (what a plan history keeps)."""
    if conversation is not None:
        return [dict(t) for t in conversation]
    edit = plan.get("edit") if isinstance(plan, Mapping) else None
    if isinstance(edit, Mapping) and edit.get("ops") is not None and edit.get("request") is not None:
        return [{"request": edit["request"], "ops": list(edit["ops"])}]
    return []


_UNDO_RE = re.compile(
    r"^\s*(?:(?:please|ok|okay|hmm|no|nah)[\s,]+)*(?:undo|revert|take\s+(?:that|it|this)\s+back|go\s+back|"
    r"cancel\s+(?:that|it|this)|never\s*mind|roll\s+(?:that\s+|it\s+)?back|put\s+it\s+back(?:\s+the\s+way\s+it\s+was)?|"
    r"(?:i\s+)?(?:don'?t|do\s+not)\s+like\s+(?:that|it|this)|scratch\s+that|back\s+out)"
    r"(?:\s+(?:that|it|this|the\s+last\s+(?:edit|change|one)|last|the\s+change|please|again))*[\s.!]*$",
    re.I,
)


def is_undo(message: str) -> bool:
    """Whether `message` asks to take back the last edit ("undo that", "revert", "never mind")."""
    return bool(_UNDO_RE.match(message or ""))


def propose_detailed(
    plan: Mapping[str, Any],
    message: str,
    *,
    provider: ChatProvider | None = None,
    conversation: Sequence[Mapping[str, Any]] | None = None,
    analysis: Mapping[str, Any] | None = None,
) -> Proposal:
    if not isinstance(message, str) or not message.strip():
        raise InputError("the request is empty", hint="say what to change, e.g. " + repr(EXAMPLES[0]))
    if is_undo(message):
        return Proposal([], "local", undo=True)
    turns = _turns(plan, conversation)
    reason = None
    if provider is not None:
        try:
            ops = provider.propose(plan, message, conversation=turns)
            if not ops:
                raise ProviderError(f"{provider.name} proposed no operation", transient=False)
            po.apply(plan, ops)  # operations that do not fit the plan are a failed proposal
            return Proposal(list(ops), provider.name)
        except LookalikeError as exc:
            reason = f"{provider.name}: {exc}"
            log.warning("chat_provider_failed", provider=provider.name, error=str(exc))
    try:
        ops, notes = parse_detailed(plan, message, conversation=turns, analysis=analysis)
    except InputError as exc:
        if reason:
            raise InputError(
                exc.message,
                hint=f"{exc.hint or ''}; the {provider.name if provider else ''} "
                f"provider failed too ({reason})".lstrip("; "),
            ) from exc
        raise
    return Proposal(ops, "local", reason, tuple(notes))


@dataclass(frozen=True)
class ChatResult:
    """One chat turn over a plan history: the proposal, the plan before and after, the changes
    between them, and the version written (None for a dry run or a refused confirmation)."""

    proposal: Proposal
    before: dict[str, Any]
    after: dict[str, Any]
    changes: list[po.Change]
    version: int | None

    def reply(self) -> str:
        lines = [self.proposal.reply(), "changes:" if self.changes else "changes: none"]
        lines.extend(f"  {c.describe()}" for c in self.changes)
        return "\n".join(lines)


def chat_edit(
    history: Any,
    message: str,
    *,
    provider: ChatProvider | None = None,
    analysis: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    confirm: Callable[[ChatResult], bool] | None = None,
) -> ChatResult:
    """A chat turn on `history` (a `plan_history.PlanHistory`): the request becomes operations
    (or an undo), their diff is computed before anything is written and shown to `confirm` (which
    may refuse), then they are applied as a new version that records the turn.

    The conversation comes from the history, so "and scene 4 too" works across processes."""
    before = history.get()
    proposal = propose_detailed(
        before, message, provider=provider, conversation=history.conversation(), analysis=analysis
    )
    if proposal.undo:
        base = (before.get("edit") or {}).get("base_version")
        if base is None:
            raise InputError(
                "there is no edit to undo",
                hint=f"the plan is at version {history.latest_version()}, its first state",
            )
        after = history.get(base)
    else:
        after = po.apply(before, proposal.ops)
    preview = ChatResult(proposal, before, after, po.diff(before, after), None)
    if dry_run or (confirm is not None and not confirm(preview)):
        return preview
    if proposal.undo:
        version, after = history.undo()
    else:
        note = {"source": proposal.source, "targets": proposal.targets}
        if proposal.fallback_reason:
            note["fallback_reason"] = proposal.fallback_reason
        version, after = history.edit(proposal.ops, request=message, note=note)
    return ChatResult(proposal, before, after, po.diff(before, after), version)


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
_MORE = r"(?:much|a lot|lots|way|far|really|very|heavy|heavily|strong|strongly|intense|super|extremely|massively)"
_LESS = r"(?:slightly|a bit|a little|a little bit|a touch|somewhat|a tad|subtle|subtly|light|lightly|gentle|a hint of|a smidge)"
_N = r"(\d+(?:\.\d+)?)"
_SCENE_LIST = r"(\d+(?:\+\d+)*)"
_UNIT = r"(frames?|s\b|secs?\b|seconds?)"
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
    (r"motion blur|\bblur(?:ry)?\b", "motion_blur"),
    (r"lens flares?|\bflares?\b", "lens_flare"),
    (r"particles|sparkles|\bdust\b|snow", "particles"),
    (r"depth of field|\bbokeh\b|shallow focus", "depth_of_field"),
    (r"stabili[sz](?:e|ation|ed)", "stabilization"),
    (r"vignett(?:e|ing)", "vignette"),
]
# Relative grade words: (pattern, adjust_grade deltas at intensity 1).
_GRADE_WORDS = [
    (r"\b(?:warmer|warm(?:s)? (?:it )?up|more (?:warm|orange|golden|yellow)|warm|golden)\b", {"temperature": 0.1}),
    (r"\b(?:cooler|colder|cool(?:s)? (?:it )?down|more (?:blue|cool)|bluer|cool|cold|icier|icy)\b", {"temperature": -0.1}),
    (r"\b(?:brighter|lighter|brighten|more exposure|lift|bright)\b", {"exposure": 0.3}),
    (r"\b(?:darker|darken|dimmer|less exposure|dark)\b", {"exposure": -0.3}),
    (r"\b(?:moodier|moody)\b", {"exposure": -0.2, "contrast": 0.15, "saturation": -0.1}),
    (
        r"\b(?:more contrast(?:y)?|contrasty|higher contrast|punchier|contrastier|punchy|crisper|crunchier|more pop)\b",
        {"contrast": 0.2},
    ),
    (r"\b(?:less contrast(?:y)?|lower contrast|flatter|softer|flat)\b", {"contrast": -0.2}),
    (r"\b(?:washed[- ]out|wash(?:ed)? it out|faded)\b", {"saturation": -0.2, "contrast": -0.15}),
    (
        r"\b(?:more saturat\w*|saturated|more colou?rful|more vivid|more vibrant|saturate|vivid|vibrant|"
        r"colou?rful|richer colou?rs?|more colou?r)\b",
        {"saturation": 0.2},
    ),
    (
        r"\b(?:less saturat\w*|desaturat\w*|more muted|muted|duller|dull|less colou?rful|less colou?r)\b",
        {"saturation": -0.2},
    ),
]
_PROVIDERS = ("local", "runway", "veo")
_SOUNDS = ("whoosh", "swoosh", "impact", "riser", "click", "boom", "hit", "thud", "chime", "pop")


@dataclass(frozen=True)
class Preset:
    """A mood or genre as plan operations: relative grade, music tempo and mood, pacing, effects."""

    words: str  # a regex of the words that name it
    grade: Mapping[str, float]
    music_mood: str
    tempo_factor: float | None = None
    pacing: float | None = None  # set_duration factor on the scenes (>1 slower)
    effects: Mapping[str, float] = field(default_factory=dict)
    monochrome: bool = False


PRESETS: dict[str, Preset] = {
    "horror": Preset(
        r"horror|scary|scarier|creepy|creepier|spooky|spookier|sinister|eerie|frightening|terrifying",
        {"exposure": -0.4, "contrast": 0.3, "saturation": -0.4, "temperature": -0.15},
        "dark, tense horror drones, dissonant strings",
        0.85,
        1.15,
        {"film_grain": 0.4, "vignette": 0.6},
    ),
    "dreamy": Preset(
        r"dreamy|dreamier|dreamlike|dream-like|ethereal|hazy|whimsical",
        {"exposure": 0.2, "contrast": -0.2, "saturation": -0.1, "temperature": 0.05},
        "dreamy ambient pads, soft and floating",
        0.9,
        1.2,
        {"depth_of_field": 0.5, "lens_flare": 0.3},
    ),
    "upbeat": Preset(
        r"upbeat|energetic|more energy|peppy|peppier|cheerful|happy|happier|fun|funner|lively|livelier|bouncy",
        {"exposure": 0.15, "contrast": 0.1, "saturation": 0.25, "temperature": 0.05},
        "upbeat, energetic, bright pop",
        1.15,
        0.85,
    ),
    "noir": Preset(
        r"film noir|noir|detective",
        {"exposure": -0.2, "contrast": 0.4},
        "film noir, smoky jazz, muted trumpet",
        0.9,
        1.1,
        {"film_grain": 0.5, "vignette": 0.5},
        monochrome=True,
    ),
    "vintage": Preset(
        r"vintage|retro|old[- ]school|old film|old movie|nostalgic|super ?8",
        {"contrast": -0.1, "saturation": -0.25, "temperature": 0.15},
        "vintage, warm lo-fi, vinyl crackle",
        effects={"film_grain": 0.6, "vignette": 0.3},
    ),
    "cinematic": Preset(
        r"cinematic|epic|filmic|blockbuster|hollywood",
        {"exposure": -0.1, "contrast": 0.15, "saturation": -0.05},
        "cinematic orchestral score, sweeping strings",
        None,
        1.1,
        {"depth_of_field": 0.3, "vignette": 0.2},
    ),
    "calm": Preset(
        r"calm|calmer|relaxed|relaxing|peaceful|chill|chilled|serene|soothing|mellow",
        {"contrast": -0.1, "saturation": -0.05, "temperature": 0.05},
        "calm, gentle piano and soft pads",
        0.85,
        1.2,
    ),
    "sad": Preset(
        r"sad|sadder|melancholic|melancholy|somber|sombre|gloomy|gloomier|tragic|depressing",
        {"exposure": -0.15, "saturation": -0.3, "temperature": -0.1},
        "melancholic, slow piano in a minor key",
        0.85,
        1.15,
    ),
}
# Music moods that are no preset: the words people use for a style, as the provider's prompt.
_MUSIC_MOODS = {
    r"jazz(?:y|ier)?": "jazzy",
    r"piano": "solo piano",
    r"orchestral|orchestra|strings": "orchestral",
    r"electronic|edm|techno|synthwave": "electronic",
    r"ambient": "ambient",
    r"rock(?:y|ier)?|guitar": "rock, electric guitar",
    r"lo-?fi": "lo-fi",
    r"romantic": "romantic",
    r"tense|tenser|suspenseful|dramatic": "tense, dramatic",
    r"dark(?:er)?|ominous": "dark, ominous",
    r"triumphant|heroic|uplifting|inspiring": "uplifting, triumphant",
    r"acoustic|folk(?:sy)?": "acoustic folk",
}
# Words the parser knows that its patterns do not show whole, and the small words of a request.
_FILLER = (
    "make it the a an of to in on for with and or please can you could would will i want like feel "
    "look looks more less bit little lot much very really way slightly scene scenes shot shots video "
    "whole thing everything all every each use add put set change give should be is are this that so "
    "too as also then now just bit some my our its it's up down out over into from by at same again "
    "even them those these there here let lets let's try maybe kind sort rather quite pretty "
    "movie film feel vibe look style mood tone grade color colour colors colours music song track "
    "soundtrack tempo beat bpm volume level sound key major minor voice voiceover over narration "
    "narrator line lines say saying says said read reading text words spoken hello frame frames second "
    "seconds sec secs long longer short shorter length duration times twice double half triple thrice "
    "quarter last first final opening closing ending intro outro penultimate middle next previous one "
    "between transition transitions dissolve dissolves crossfade fade fades cut cuts wipe into through "
    "black white monochrome undo revert back effect effects strength off no none remove delete drop "
    "swap switch move start beginning end prompt provider camera speed quick slow slower faster "
    "snappier tighter quicker lengthen extend shorten trim linger pace pacing tone turn lower raise "
    "higher louder quieter softer mute get rid lose kill skip also plus too well okay ok thanks "
    "where shows showing featuring containing has have had with without allscenes everywhere "
    "throughout overall entire full thing remake edit clip part bit piece about around"
)


@dataclass
class _Ctx:
    plan: Mapping[str, Any]
    n_scenes: int
    fps: float
    last: Mapping[str, Any] | None = None  # the previous turn: {"request", "ops"}
    analysis: Mapping[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    presets: set[str] = field(default_factory=set)
    _descriptors: list[str] | None = None

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

    def descriptors(self) -> list[str]:
        """Per scene, the words that say what it shows (lower case)."""
        if self._descriptors is None:
            self._descriptors = [_scene_words(self, s) for s in self.plan["scenes"]]
        return self._descriptors


def _texts(value: Any) -> list[str]:
    """The strings in an analysis value: a caption, a list of labels, of {"label"/"name"/"text"}."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [str(value[k]) for k in ("label", "name", "text", "class", "caption") if value.get(k)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _texts(v)]
    return []


def _scene_words(ctx: _Ctx, s: Mapping[str, Any]) -> str:
    parts = [str(s.get("prompt") or "")]
    src = s.get("source")
    if isinstance(src, Mapping) and src.get("media"):
        parts.append(re.sub(r"[^a-z]+", " ", str(src["media"]).lower()))
    parts += _texts(s.get("overlays") or [])
    scenes = (ctx.analysis or {}).get("scenes") or []
    at = s.get("source_index", s.get("index"))
    if isinstance(at, int) and 0 <= at < len(scenes):
        a = scenes[at]
        for key in ("caption", "objects", "text", "people", "labels"):
            parts += _texts(a.get(key))
    return " " + re.sub(r"[^a-z0-9]+", " ", " ".join(parts).lower()) + " "


def parse(
    plan: Mapping[str, Any],
    message: str,
    *,
    conversation: Sequence[Mapping[str, Any]] | None = None,
    analysis: Mapping[str, Any] | None = None,
) -> list[po.PlanOp]:
    """Operations for `message` from the local parser; InputError for what it cannot understand.

    The operations are checked against `plan` (scenes that exist, values that stay in range).
    `conversation` (the turns so far, oldest first; default: the plan's last edit) lets "and scene 4
    too" refer to the previous request; `analysis` (analysis.json) lets "the scene with the cat"
    find scenes by their captions, objects and text."""
    return parse_detailed(plan, message, conversation=conversation, analysis=analysis)[0]


def parse_detailed(
    plan: Mapping[str, Any],
    message: str,
    *,
    conversation: Sequence[Mapping[str, Any]] | None = None,
    analysis: Mapping[str, Any] | None = None,
) -> tuple[list[po.PlanOp], list[str]]:
    """(the operations, notes on how the words were read) for `message`; see `parse`."""
    scenes = plan.get("scenes") if isinstance(plan, Mapping) else None
    if not scenes:
        raise InputError("the plan has no scenes to edit")
    turns = _turns(plan, conversation)
    last = next((t for t in reversed(turns) if t.get("ops")), None)
    ctx = _Ctx(plan, len(scenes), po._fps(dict(plan)), last=last, analysis=analysis)
    text = message.strip()
    if not text:
        raise InputError("the request is empty", hint="say what to change, e.g. " + repr(EXAMPLES[0]))
    ops = _repeat(ctx, text)
    if ops is None:
        text, ops = _media_request(ctx, text)
        text, swap_ops = _swap_sources(ctx, text)
        ops.extend(swap_ops)
        head, free_ops = _free_text(ctx, text)
        for clause in _clauses(_normalize(ctx, head)):
            ops.extend(_clause(ctx, clause))
        ops.extend(free_ops)
    if not ops:
        raise _not_understood(ctx, text, whole=message)
    ops = _merge(ops)
    po.apply(plan, ops)
    return ops, ctx.notes


def _merge(ops: list[po.PlanOp]) -> list[po.PlanOp]:
    """Neighbouring adjust_grade ops on the same scenes with different fields become one, and so do
    set_music ops: "darker and more contrasty" is one change of the look, read in one line."""
    out: list[po.PlanOp] = []
    for op in ops:
        prev = out[-1] if out else None
        if (
            isinstance(op, (po.AdjustGrade, po.SetMusic))
            and prev is not None
            and type(prev) is type(op)
            and getattr(prev, "scene", None) == getattr(op, "scene", None)
        ):
            a = {k: v for k, v in prev.to_dict().items() if v is not None and k not in ("op", "scene")}
            b = {k: v for k, v in op.to_dict().items() if v is not None and k not in ("op", "scene")}
            if not set(a) & set(b):
                try:
                    out[-1] = po.op_from_dict({**prev.to_dict(), **b})
                    continue
                except InputError:
                    pass
        out.append(op)
    return out


# ---------------------------------------------------------------- the conversation

_STRUCTURAL = ("swap_scenes", "move_scene", "insert_scene", "delete_scene", "swap_sources")


def _repeat(ctx: _Ctx, text: str) -> list[po.PlanOp] | None:
    """Operations for "and scene 4 too", "same for the last scene", "again"; None for other requests."""
    t = _normalize(ctx, text, fix=False)
    ref = r"(scene [\d+]+|allscenes)"
    m = (
        re.fullmatch(
            r"(?:and|also|now|plus|ok|okay)?\s*(?:please\s+)?(?:do\s+|apply\s+|make\s+)?(?:the\s+|that\s+)?"
            r"(?:same|that|this)\s+(?:thing\s+|change\s+|again\s+)?(?:for|to|with|on|in)\s+" + ref
            + r"\s*(?:too|as well|also)?",
            t,
        )
        or re.fullmatch(r"(?:and|also|plus)?\s*(?:for|to|in|on|with)?\s*" + ref + r"\s+(?:too|as well|also)", t)
        or re.fullmatch(r"(?:and|also|plus)\s+(?:for\s+|to\s+|in\s+)?" + ref, t)
    )
    again = re.fullmatch(
        r"(?:(?:do|make)\s+(?:it|that)\s+)?(?:again|even more|more of (?:that|the same)|once more|"
        r"(?:a\s+)?(?:bit|little|lot)\s+more|more|same again|and again|one more time)",
        t,
    )
    if not m and not again:
        return None
    if ctx.last is None:
        raise InputError(
            f"{text!r} refers to the previous edit, but there is none in this conversation",
            hint="say the whole change, e.g. 'make scene 4 warmer'",
        )
    last = [po.op_from_dict(d) for d in ctx.last.get("ops") or []]
    if again:
        ctx.notes.append(f"repeating the previous edit ({ctx.last.get('request')!r})")
        return last
    assert m is not None
    targets = [None] if m.group(1) == "allscenes" else [ctx.scene(int(n)) for n in m.group(1)[6:].split("+")]
    out: list[po.PlanOp] = []
    for op in last:
        d = op.to_dict()
        if d["op"] in _STRUCTURAL or "scene" not in d or d["scene"] is None:
            continue
        for i in targets:
            if i is None and d["op"] in ("set_duration", "set_camera", "set_prompt", "set_voice_line",
                                         "set_transition", "add_sfx", "clear_voice_lines", "use_media"):
                new = [po.op_from_dict({**d, "scene": k}) for k in range(ctx.n_scenes)]
            else:
                new = [po.op_from_dict({**d, "scene": i})]
            out.extend(x for x in new if x not in out)
    if not out:
        raise InputError(
            f"{text!r}: the previous edit ({ctx.last.get('request')!r}) has no scene change to repeat elsewhere",
            hint="say the whole change, e.g. 'make scene 4 warmer'",
        )
    ctx.notes.append(f"the same as {ctx.last.get('request')!r}, on other scenes")
    return out


# ---------------------------------------------------------------- words the parser does not know


def _vocabulary() -> frozenset[str]:
    text = " ".join(
        [
            _FILLER,
            " ".join(p for p, _ in _CAMERA_WORDS),
            " ".join(p for p, _ in _EFFECT_WORDS),
            " ".join(p for p, _ in _GRADE_WORDS),
            " ".join(p.words for p in PRESETS.values()),
            " ".join(PRESETS),
            " ".join(_MUSIC_MOODS),
            " ".join(_ORDINALS),
            " ".join(_NUMBER_WORDS),
            " ".join(_SOUNDS),
            " ".join(_PROVIDERS),
            " ".join(_MUSIC_PROVIDERS),
            " ".join(po.EFFECTS).replace("_", " "),
            " ".join(po.CAMERA_MOTIONS).replace("_", " "),
            _MORE,
            _LESS,
            "elevenlabs sharp flat lufs percent position before after insert append new sfx whoosh "
            "exposure contrast saturation temperature contrasty colder warmer brighter darker "
            "moodier punchier washed saturated desaturated",
        ]
    )
    # Regex syntax is no word: escapes (\\b, \\s) and suffix groups ("pan(?:s|ning)?") go first.
    text = re.sub(r"\\[a-zA-Z]", " ", text)
    text = re.sub(r"\(\?:[a-z|]*\)\??", "", text)
    return frozenset(w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 2)


def _known(ctx: _Ctx) -> frozenset[str]:
    return _VOCAB | frozenset(" ".join(ctx.descriptors()).split())


def _close_word(word: str, vocab: Sequence[str]) -> str | None:
    """The known word a typo most likely means: one swap of neighbouring letters, else difflib."""
    for w in vocab:
        if len(w) == len(word) and sorted(w) == sorted(word):
            diff = [k for k in range(len(w)) if w[k] != word[k]]
            if len(diff) == 2 and diff[1] == diff[0] + 1:
                return w
    if len(word) < 4:
        return None
    close = difflib.get_close_matches(word, [w for w in vocab if len(w) >= 4], n=1, cutoff=0.85)
    return close[0] if close else None


def _fix_typos(ctx: _Ctx, text: str) -> str:
    vocab = _known(ctx)
    ordered = sorted(vocab)
    fixes: dict[str, str] = {}
    for word in set(re.findall(r"[a-z]+", text)):
        if len(word) < 3 or word in vocab:
            continue
        close = _close_word(word, ordered)
        if close:
            fixes[word] = close
    for word, close in sorted(fixes.items()):
        text = re.sub(rf"\b{word}\b", close, text)
        note = f"read {word!r} as {close!r}"
        if note not in ctx.notes:
            ctx.notes.append(note)
    return text


def _not_understood(ctx: _Ctx, part: str, *, whole: str | None = None) -> InputError:
    """An InputError that names the words the parser did not know, with the nearest it does know."""
    vocab = _known(ctx)
    words = re.findall(r"[a-z']+", part.lower())
    unknown = [w for w in dict.fromkeys(words) if w.strip("'") not in vocab and not w.isdigit()]
    hints = []
    for w in unknown:
        near = difflib.get_close_matches(w, sorted(v for v in vocab if len(v) >= 4), n=2, cutoff=0.6)
        if near:
            hints.append(f"{w!r}: did you mean {' or '.join(repr(n) for n in near)}?")
    example = difflib.get_close_matches(part.lower(), [e.lower() for e in EXAMPLES], n=1, cutoff=0.0)
    hints.append("closest request it knows: " + repr(example[0] if example else EXAMPLES[0]))
    what = repr(whole) if whole is not None and whole.strip().lower() != part.strip().lower() else ""
    said = f"could not understand {part.strip()!r}" + (f" in {what}" if what else "")
    if unknown:
        said += ": the offline parser does not know the word" + ("s " if len(unknown) > 1 else " ")
        said += ", ".join(repr(w) for w in unknown)
    else:
        said += ": it knows each word but not what they ask for together"
    return InputError(said, hint="; ".join(hints))


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
        line = _strip_quotes(re.sub(r"^(?:saying|that\s+says|says|say|reading)\s+", "", line.strip(), flags=re.I))
        if not line:
            raise InputError(
                "set_voice_line.text: the voice-over line is empty",
                hint="give the words after a colon, e.g. 'voice line for scene 2: hello'",
            )
        return text[: m.start()], [
            po.SetVoiceLine(scene=_scene_word(ctx, number), text=line, offset_s=float(at) if at else 0.0)
        ]
    said = _voice_saying(ctx, text)
    if said is not None:
        return said
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




_VOICE_WORD = r"(?:voice[- ]?over|voiceover|voice[- ]?line|voice|narration|narrator|vo)"
# "add a voice over saying hello world in scene 1", 'narrate "hi" over the last scene'.
_VOICE_SAYING_RE = re.compile(
    r"(?:\b(?:add|put|record|have|get|give\s+(?:me|it|us))\s+)?(?:a\s+|an\s+|the\s+|some\s+)?"
    r"(?:\b" + _VOICE_WORD + r"\b(?P<mid>.*?)(?:\b(?:saying|that\s+says|who\s+says|which\s+says|to\s+say|say|says|reading|with\s+the\s+words)\b|:)"
    r"|\bnarrat(?:e|es|ing)\b)\s*[:,]?\s*(?P<text>.+)$",
    re.I | re.S,
)
_QUOTED_RE = re.compile(r"[\"“”]([^\"“”]+)[\"“”]|(?<![a-z])'([^']{2,})'(?![a-z])", re.I)
_TRAILING_SCENE_RE = re.compile(
    r"[\s,]+(?:(?:in|on|for|over|at|during|to|into)\s+)(?:the\s+)?(?:very\s+)?"
    r"(?:scene\s+\w+|\w+\s+scene|start|beginning|end|ending|intro|opening|outro)\s*[.!]?$",
    re.I,
)


def _scenes_in(ctx: _Ctx, text: str) -> list[int] | None:
    """The scenes a bit of the original words names ("in the last scene", "at the end"), or None."""
    t = " " + text.lower() + " "
    if re.search(r"\b(?:at|in)\s+the\s+(?:very\s+)?(?:end|ending|outro)\b", t):
        return [ctx.n_scenes - 1]
    if re.search(r"\b(?:at|in)\s+the\s+(?:very\s+)?(?:start|beginning|intro|opening)\b", t):
        return [0]
    norm = _normalize(ctx, t, fix=False)
    return _scene_refs(ctx, norm)


def _voice_saying(ctx: _Ctx, text: str) -> tuple[str, list[po.PlanOp]] | None:
    quoted = _QUOTED_RE.search(text)
    m = _VOICE_SAYING_RE.search(text)
    has_voice = re.search(r"\b" + _VOICE_WORD + r"\b|\bnarrat(?:e|es|ing)\b|\bsay(?:s|ing)?\b", text, re.I)
    if quoted and has_voice:
        line = quoted.group(1) or quoted.group(2)
        around = text[: quoted.start()] + " " + text[quoted.end() :]
        start = has_voice.start()
        head = _before_request(text[: min(start, quoted.start())])
    elif m:
        line = m.group("text")
        tail = _TRAILING_SCENE_RE.search(line)
        around = (m.group("mid") or "") + " " + (tail.group(0) if tail else "") + " " + text[: m.start()]
        if tail:
            line = line[: tail.start()]
        head = _before_request(text[: m.start()])
    else:
        return None
    line = _strip_quotes(line).rstrip(" .")
    if not line:
        return None
    refs = _scenes_in(ctx, around) if around.strip() else None
    if refs is None:
        refs = [0]
        ctx.notes.append("no scene named for the voice-over: it starts with the first scene")
    return head, [po.SetVoiceLine(scene=i, text=line) for i in refs[:1]]


def _before_request(text: str) -> str:
    """The requests before a free-text one: up to its last separator ("warmer, and add ...")."""
    cut = max((m.end() for m in re.finditer(r",|;|\.\s|\band\b|\bthen\b|\balso\b", text, re.I)), default=0)
    return text[:cut]


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



_NOT_DESCRIBED = frozenset(
    "first second third fourth fifth sixth last final whole next previous same opening closing ending "
    "other new entire penultimate intro outro middle every each all this that one two three four five "
    "scene".split()
)


def _described(ctx: _Ctx, text: str) -> str:
    """ "the scene with the cat" and "the cat scene" as "scene 3" (or "scene 2+4" where several show it)."""

    def find(words: list[str]) -> tuple[int, list[int]] | None:
        for n in range(min(3, len(words)), 0, -1):
            phrase = " ".join(words[:n])
            stem = phrase[:-1] if phrase.endswith("s") and len(phrase) > 3 else phrase
            hits = [
                i
                for i, d in enumerate(ctx.descriptors())
                if re.search(rf"\b(?:{re.escape(phrase)}|{re.escape(stem)}s?)\b", d)
            ]
            if hits:
                return n, hits
        return None

    def with_(m: re.Match[str]) -> str:
        words = m.group(1).split()
        got = find(words)
        if got is None:
            near = difflib.get_close_matches(words[0], sorted(set(" ".join(ctx.descriptors()).split())), n=3, cutoff=0.6)
            raise InputError(
                f"no scene shows {words[0]!r}: the plan's scenes do not mention it",
                hint=(f"did you mean {' or '.join(repr(n) for n in near)}? " if near else "")
                + "`lookalike plan show DIR` lists what each scene shows",
            )
        n, hits = got
        rest = " ".join(words[n:])
        return f" scene {'+'.join(str(i + 1) for i in hits)} {rest} "

    text = re.sub(
        r"\b(?:the|a)\s+(?:scenes?|shots?|part|bit|clip|one)\s+(?:with|showing|that\s+shows|where\s+you\s+see|"
        r"featuring|containing|that\s+has|which\s+has|where)\s+(?:the\s+|a\s+|an\s+|some\s+|my\s+|our\s+|two\s+)?"
        r"((?:[a-z0-9']+\s*){1,3})",
        with_,
        text,
    )

    def named(m: re.Match[str]) -> str:
        if m.group(1) in _NOT_DESCRIBED or m.group(1) in _VOCAB:
            return m.group(0)
        got = find([m.group(1)])
        if got is None:
            near = difflib.get_close_matches(m.group(1), sorted(set(" ".join(ctx.descriptors()).split())), n=3, cutoff=0.6)
            raise InputError(
                f"no scene shows {m.group(1)!r}: the plan's scenes do not mention it",
                hint=(f"did you mean {' or '.join(repr(n) for n in near)}? " if near else "")
                + "`lookalike plan show DIR` lists what each scene shows",
            )
        return f" scene {'+'.join(str(i + 1) for i in got[1])} "

    return re.sub(r"\bthe\s+([a-z]+)\s+(?:scene|shot)s?\b", named, text)


def _normalize(ctx: _Ctx, text: str, *, fix: bool = True) -> str:
    t = " " + text.lower().replace("colour", "color").replace("’", "'") + " "
    if fix:
        t = _fix_typos(ctx, t)
    t = re.sub(r"black\s+(?:and|&|n)\s+white|b\s*&\s*w|greyscale|grayscale", " monochrome ", t)
    t = _described(ctx, t)
    t = re.sub(
        r"\b(?:every|each|all(?:\s+(?:of\s+)?the)?)\s+(?:scene|shot|clip)s?\b|\b(?:the\s+)?(?:whole|entire|full)\s+"
        r"(?:thing|video|film|movie|edit|remake|clip|piece|sequence)\b|\beverything\b|\ball of it\b|\bthroughout\b|"
        r"\beverywhere\b|\boverall\b|\bacross the board\b|\bglobally\b",
        " allscenes ",
        t,
    )
    n = ctx.n_scenes
    t = re.sub(
        r"\b(?:penultimate|second[- ]to[- ]last|second[- ]last|next[- ]to[- ]last)\s+(?:scene|shot)\b",
        f"scene {max(1, n - 1)}",
        t,
    )
    t = re.sub(r"\b(?:opening|intro)\s+(?:scene|shot)\b|\bthe\s+(?:intro|opening)\b", "scene 1", t)
    t = re.sub(r"\b(?:closing|ending|outro)\s+(?:scene|shot)\b|\bthe\s+(?:ending|outro)\b", f"scene {n}", t)
    t = re.sub(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", lambda m: _NUMBER_WORDS[m.group(1)], t)
    # "the first two scenes", "the last 3 shots"
    t = re.sub(
        r"\b(first|last|final|opening|closing)\s+(\d+)\s+(?:scene|shot)s\b",
        lambda m: "scene "
        + "+".join(
            str(k)
            for k in (
                range(1, min(n, int(m.group(2))) + 1)
                if m.group(1) in ("first", "opening")
                else range(max(1, n - int(m.group(2)) + 1), n + 1)
            )
        ),
        t,
    )
    ords = "|".join([*_ORDINALS, "last", "final"])
    t = re.sub(
        r"\b(" + ords + r")\s+(and|&|to|into)\s+(?:the\s+)?(" + ords + r")\s+(?:scene|shot)s?\b",
        lambda m: f"scene {_scene_word(ctx, m.group(1)) + 1} {m.group(2)} scene {_scene_word(ctx, m.group(3)) + 1}",
        t,
    )
    t = re.sub(r"\b(" + ords + r")\s+(?:scene|shot)\b", lambda m: f"scene {m.group(1)}", t)
    t = re.sub(r"\bscene\s+(" + ords + r")\b", lambda m: f"scene {_scene_word(ctx, m.group(1)) + 1}", t)
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
    t = re.sub(r"\bthe\s+(scene\s+\d)", r"\1", t)
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


_MUSIC = r"\b(?:music|tempo|bpm|beat|soundtrack|song|score)\b"
_TKIND = r"(dissolve|cross[- ]?dissolve|cross-?fade|fade(?:\s+(?:through|to)\s+black)?|hard\s+cut|cut|mix)(?:e?s)?"
_LEN = r"(?:\s+(?:over|of|lasting|for|taking)\s+" + _N + r"\s*" + _UNIT + r")?"
_ADJ = r"(?:(slow|long|gentle|soft|quick|short|fast|snappy|brief)\s+)?"
_PRE_LEN = r"(?:(\d+(?:\.\d+)?)\s*-?\s*" + _UNIT + r"\s+)?"


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
        r"\b(?:swap|switch|exchange|flip|trade)\s+(?:scene\s+)?(\d+)\s*(?:\+|\s(?:and|with|&|for)\s)\s*(?:scene\s+)?(\d+)"
        r"(?:\s+(?:around|round))?",
        lambda m: [po.SwapScenes(a=ctx.scene(int(m.group(1))), b=ctx.scene(int(m.group(2))))],
    )
    take(
        r"\b(?:move|put|place)\s+scene\s+(\d+)\s+(?:to\s+(?:the\s+)?(start|beginning|end)|at\s+the\s+(start|beginning|end)"
        r"|to\s+(?:position\s+)?(\d+)|(before|after)\s+scene\s+(\d+)|(first|last))",
        lambda m: [_move(ctx, m)],
    )
    take(
        r"\b(?:delete|remove|drop|get rid of|lose|kill|skip|cut out|throw out|ditch)\s+(?:the\s+)?scene\s+" + _SCENE_LIST
        + r"(?!\s*(?:to|by|down)\b)",
        lambda m: [
            po.DeleteScene(scene=i)
            for i in sorted(_scene_refs(ctx, "scene " + m.group(1)) or [], reverse=True)
        ],
    )
    take(
        r"\b(?:use\s+|add\s+|put\s+|with\s+|make\s+(?:it\s+)?|want\s+)?(?:a\s+|an\s+)?" + _PRE_LEN + _ADJ + _TKIND
        + r"(?:\s+transitions?)?\s+(?:between|from)\s+(?:scene\s+)?(\d+)\s*(?:\+|and|&|,|to|into|->)\s*(?:scene\s+)?(\d+)" + _LEN,
        lambda m: [_transition(ctx, m, between=True)],
    )
    take(
        r"\b(?:the\s+)?(?:transition|cut|change)\s+(?:between|from)\s+(?:scene\s+)?(\d+)\s*(?:\+|and|&|,|to|into)\s*"
        r"(?:scene\s+)?(\d+)\s+(?:should\s+be|to|into|as|with|be)\s+(?:a\s+|an\s+)?" + _ADJ + _TKIND + _LEN,
        lambda m: [_transition_after(ctx, m)],
    )
    take(
        r"\b(?:use\s+|add\s+|put\s+|with\s+)?(?:a\s+|an\s+)?" + _PRE_LEN + _ADJ + _TKIND
        + r"\s+(?:in)?to\s+(?:the\s+)?scene\s+(\d+)" + _LEN,
        lambda m: [_transition(ctx, m)],
    )
    take(
        r"\b(?:use\s+|add\s+|put\s+|with\s+)?(?:a\s+|an\s+)?" + _ADJ + _TKIND
        + r"(?:\s+transitions?)?\s+(?:between\s+(?:the\s+)?(?:scene\b|allscenes|cuts)|(?:at|on|for)\s+(?:every|each|all)\s+(?:cut|boundar\w+)"
        r"|allscenes|everywhere)" + _LEN,
        lambda m: _every_transition(ctx, m),
    )
    take(
        r"\bfade\s+in\b(?:\s+from\s+black)?(?:\s+(?:at\s+the\s+start|(?:on|in)\s+scene\s+1))?",
        lambda m: [po.SetTransition(scene=0, kind="fade", n_frames=max(2, round(ctx.fps / 2)))],
    )
    if not rest.strip():
        return ops

    scenes: list[int] | None = None
    every = False
    named_any = False
    topic = None
    for part in re.split(r",|\band\b|\bwith\b(?=.*\bscene\b)", rest):
        part = part.strip()
        if not part:
            continue
        if "allscenes" in part:
            scenes, every, named_any = None, True, True
            part = part.replace("allscenes", " ").strip()
        refs = _scene_refs(ctx, part)
        if refs is not None:
            scenes, every, named_any = refs, False, True
        if re.search(_MUSIC, part) or (topic == "music" and refs is None and _music_fields(ctx, part)):
            ops.extend(_music(ctx, part))
            topic = "music"
            continue
        topic = None
        got = _part(ctx, part, scenes, every)
        if got is None:
            bare = re.sub(r"\bscene\s*#?\s*" + _SCENE_LIST, " ", part)
            if not re.sub(r"\b(?:make|please|it|to|in|on|for|the|of|do|can you|could you|just|now|so)\b", " ", bare).strip():
                continue
            raise _not_understood(ctx, part, whole=clause)
        ops.extend(got)
    if not ops and named_any:
        raise InputError(
            f"{clause!r} names a scene but no change", hint="say what to change, e.g. 'scene 2 warmer'"
        )
    return ops


def _move(ctx: _Ctx, m: re.Match[str]) -> po.PlanOp:
    src = ctx.scene(int(m.group(1)))
    where = m.group(2) or m.group(3) or {"first": "start", "last": "end"}.get(m.group(7) or "")
    if where:
        to = 0 if where in ("start", "beginning") else ctx.n_scenes - 1
    elif m.group(4):
        to = ctx.scene(int(m.group(4)))
    else:
        ref = ctx.scene(int(m.group(6)))
        to = ref if m.group(5) == "before" else ref + 1
        if src < to:
            to -= 1
    return po.MoveScene(scene=src, to=to)


def _kind(word: str) -> str:
    w = re.sub(r"[- ]", "", word)
    if w.startswith("fade"):
        return "fade"
    return {"crossfade": "dissolve", "crossdissolve": "dissolve", "mix": "dissolve", "hardcut": "cut"}.get(w, w)


def _transition_frames(ctx: _Ctx, kind: str, adj: str | None, amount: str | None, unit: str | None) -> int:
    if kind == "cut":
        return 0
    if amount:
        return ctx.frames(float(amount), unit)
    if adj in ("slow", "long", "gentle", "soft"):
        return max(2, round(ctx.fps))
    if adj in ("quick", "short", "fast", "snappy", "brief"):
        return max(2, round(ctx.fps / 4))
    return max(2, round(ctx.fps / 2))  # half a second


def _transition(ctx: _Ctx, m: re.Match[str], *, between: bool = False) -> po.PlanOp:
    # groups: pre amount, pre unit, adjective, kind, scene(s), post amount, post unit
    g = m.groups()
    kind = _kind(g[3])
    if between:
        a, b = ctx.scene(int(g[4])), ctx.scene(int(g[5]))
        if abs(a - b) != 1:
            raise InputError(
                f"scenes {a + 1} and {b + 1} do not meet: a transition sits between neighbouring scenes",
                hint=f"e.g. 'a {kind} between scene {a + 1} and {a + 2}'",
            )
        scene, amount, unit = max(a, b), g[6] or g[0], g[7] or g[1]
    else:
        scene, amount, unit = ctx.scene(int(g[4])), g[5] or g[0], g[6] or g[1]
    return po.SetTransition(scene=scene, kind=kind, n_frames=_transition_frames(ctx, kind, g[2], amount, unit))


def _transition_after(ctx: _Ctx, m: re.Match[str]) -> po.PlanOp:
    a, b = ctx.scene(int(m.group(1))), ctx.scene(int(m.group(2)))
    if abs(a - b) != 1:
        raise InputError(f"scenes {a + 1} and {b + 1} do not meet: a transition sits between neighbouring scenes")
    kind = _kind(m.group(4))
    return po.SetTransition(
        scene=max(a, b), kind=kind, n_frames=_transition_frames(ctx, kind, m.group(3), m.group(5), m.group(6))
    )


def _every_transition(ctx: _Ctx, m: re.Match[str]) -> list[po.PlanOp]:
    kind = _kind(m.group(2))
    n = _transition_frames(ctx, kind, m.group(1), m.group(3), m.group(4))
    return [po.SetTransition(scene=i, kind=kind, n_frames=n) for i in range(1, ctx.n_scenes)]


_MUSIC_PROVIDERS = ("local", "elevenlabs")


def _music_fields(ctx: _Ctx, text: str) -> dict[str, Any]:
    """The set_music fields `text` asks for ({} when none)."""
    k = _intensity(text)
    out: dict[str, Any] = {}
    m = re.search(r"\b(?:use|with|from|via|by|switch to|make it with)\b.*\b(" + "|".join(_MUSIC_PROVIDERS) + r")\b", text)
    if m:
        out["provider"] = m.group(1)
    m = re.search(r"(?:tempo|bpm)\s*(?:of|to|=|at)?\s*" + _N + r"(?!\s*%)|" + _N + r"\s*bpm", text)
    if m:
        out["tempo_bpm"] = float(m.group(1) or m.group(2))
    m = re.search(
        r"\bkey\s+(?:of\s+|to\s+)?([a-g])\s*(#|b|sharp|flat)?\s*(major|minor)|\bin\s+([a-g])\s*(#|sharp|flat)?\s*(major|minor)",
        text,
    )
    if m:
        note, acc, mode = (
            (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(4), m.group(5), m.group(6))
        )
        acc = {"sharp": "#", "flat": "b", None: ""}.get(acc, acc)
        out["key"] = f"{note.upper()}{acc} {mode}"
    if "tempo_bpm" not in out:
        m = re.search(_N + r"\s*%\s*(faster|slower|quicker)", text)
        if m:
            f = 1 + float(m.group(1)) / 100
            out["tempo_factor"] = round(f if m.group(2) != "slower" else 1 / f, 4)
        elif re.search(r"\b(?:faster|quicker|speed(?:s)? (?:\w+ )*?up|up-?tempo|more energetic|pick up the pace)\b", text):
            out["tempo_factor"] = round(1 + 0.1 * k, 4)
        elif re.search(r"\b(?:slower|slow (?:\w+ )*?down|more relaxed|down-?tempo)\b", text):
            out["tempo_factor"] = round(1 / (1 + 0.1 * k), 4)
    lufs = (ctx.plan.get("music") or {}).get("lufs")
    lufs = -14.0 if lufs is None else float(lufs)
    m = re.search(r"(-\d+(?:\.\d+)?)\s*lufs", text)
    if m:
        out["lufs"] = max(-40.0, min(-6.0, float(m.group(1))))
    elif re.search(r"\b(?:mute|no music|silence|silent)\b", text):
        out["lufs"] = -40.0
    elif re.search(r"\b(?:louder|turn (?:\w+ )*?up|raise|boost|more music|higher|pump (?:\w+ )*?up)\b", text):
        out["lufs"] = min(-6.0, lufs + 2.0 * k)
    elif re.search(r"\b(?:quieter|softer|turn (?:\w+ )*?down|lower|less loud|reduce|duck|lower volume)\b", text):
        out["lufs"] = max(-40.0, lufs - 2.0 * k)
    for preset in PRESETS.values():
        if re.search(r"\b(?:" + preset.words + r")\b", text):
            out["mood"] = preset.music_mood
            if preset.tempo_factor is not None and "tempo_factor" not in out and "tempo_bpm" not in out:
                out["tempo_factor"] = round(1 + (preset.tempo_factor - 1) * k, 4)
            break
    else:
        for pattern, mood in _MUSIC_MOODS.items():
            if re.search(r"\b(?:" + pattern + r")\b", text):
                out["mood"] = mood
                break
    return out


def _music(ctx: _Ctx, text: str) -> list[po.PlanOp]:
    fields = _music_fields(ctx, text)
    if not fields:
        err = _not_understood(ctx, text)
        raise InputError(
            f"could not understand what to change about the music in {text!r}"
            + (err.message[err.message.index(":") :] if ":" in err.message else ""),
            hint="try 'faster music', 'tempo 128', 'music in A minor', 'louder music', 'sadder music', "
            "'music from elevenlabs'",
        )
    return [po.SetMusic(**fields)]


def _need_scenes(ctx: _Ctx, scenes: list[int] | None, every: bool, what: str) -> list[int]:
    if scenes is None:
        if every:
            return list(range(ctx.n_scenes))
        raise InputError(f"say which scene to {what}", hint=f"e.g. 'scene 2 {what}' or 'make every scene {what}'")
    return scenes


def _grade_op(scenes: list[int] | None, **delta: float) -> list[po.PlanOp]:
    if scenes is None:
        return [po.AdjustGrade(scene=None, **delta)]
    return [po.AdjustGrade(scene=i, **delta) for i in scenes]


def _preset_ops(ctx: _Ctx, name: str, k: float, scenes: list[int] | None) -> list[po.PlanOp]:
    """The operations of a mood preset at intensity `k`; music only when no scene is named."""
    p = PRESETS[name]
    ops: list[po.PlanOp] = []
    targets: list[int | None] = [None] if scenes is None else list(scenes)
    if p.monochrome:
        ops += [po.SetGrade(scene=i, saturation=0.0) for i in targets]
    ops += _grade_op(scenes, **{key: round(v * k, 4) for key, v in p.grade.items()})
    for effect, strength in p.effects.items():
        ops += [po.SetEffect(scene=i, effect=effect, strength=round(min(1.0, strength * k), 4)) for i in targets]
    if scenes is None:
        music: dict[str, Any] = {"mood": p.music_mood}
        if p.tempo_factor is not None:
            music["tempo_factor"] = round(1 + (p.tempo_factor - 1) * k, 4)
        ops.append(po.SetMusic(**music))
    if p.pacing is not None:
        factor = round(1 + (p.pacing - 1) * k, 4)
        ops += [po.SetDuration(scene=i, factor=factor) for i in (scenes or range(ctx.n_scenes))]
    ctx.notes.append(f"'{name}' is a preset: " + "; ".join(op.describe() for op in ops[:4]) + ("; ..." if len(ops) > 4 else ""))
    return ops


_TIMES = {
    "twice": 2.0,
    "double": 2.0,
    "thrice": 3.0,
    "triple": 3.0,
    "halve": 0.5,
    "half": 0.5,
    "a third of": 1 / 3,
    "a quarter of": 0.25,
}


def _part(ctx: _Ctx, part: str, scenes: list[int] | None, every: bool = False) -> list[po.PlanOp] | None:
    """Operations for one short phrase ("warmer", "shorten scene 2 by 10 frames"), None if none."""
    k = _intensity(part)
    if scenes is None and not every and re.search(r"\b(?:it|video|film|movie|edit|pace|pacing)\b", part):
        every = True  # "make it faster": the whole video
    lengths = lambda: _need_scenes(ctx, scenes, every, "change the length of")  # noqa: E731
    # Lengths with numbers first: "shorten ... by 10 frames", "make scene 2 3 seconds long".
    m = re.search(
        r"\b(shorten|shorter|trim|cut|lengthen|longer|extend|slow(?:er)?|fast(?:er)?)\b.*?\bby\s+"
        + _N
        + r"\s*(%|frames?|s\b|secs?\b|seconds?)",
        part,
    )
    if m:
        sign = -1 if m.group(1) in ("shorten", "shorter", "trim", "cut", "fast", "faster") else 1
        if m.group(3) == "%":
            f = 1 + sign * float(m.group(2)) / 100
            return [po.SetDuration(scene=i, factor=f) for i in lengths()]
        n = ctx.frames(float(m.group(2)), m.group(3))
        return [po.SetDuration(scene=i, delta_frames=sign * n) for i in lengths()]
    m = re.search(_N + r"\s*%\s*(slower|longer|faster|shorter)", part)
    if m:
        f = 1 + float(m.group(1)) / 100
        f = f if m.group(2) in ("slower", "longer") else 1 / f
        return [po.SetDuration(scene=i, factor=round(f, 4)) for i in lengths()]
    # "twice as long", "half as long", "3 times as long", "double the length", "half the length"
    m = re.search(
        r"\b(?:twice|double|thrice|triple|half|a third of|a quarter of|\d+(?:\.\d+)?\s*(?:x|times))\s+"
        r"(?:as\s+(?:long|short|slow|fast)|the\s+(?:length|duration)|longer|slower|shorter|faster)\b"
        r"|\b(?:double|halve|triple)\s+(?:the\s+)?(?:length|duration|it\b|scene)",
        part,
    )
    if m:
        said = m.group(0)
        num = re.match(r"\d+(?:\.\d+)?", said)
        f = float(num.group(0)) if num else next(v for w, v in _TIMES.items() if said.startswith(w))
        if re.search(r"\b(?:short|fast|shorter|faster)\b", said):
            f = 1 / f
        return [po.SetDuration(scene=i, factor=round(f, 4)) for i in lengths()]
    # "a second shorter", "2 seconds longer", "half a second longer", "10 frames shorter"
    m = re.search(r"\b(a|an|one|half a|\d+(?:\.\d+)?)\s+(frames?|secs?|seconds?|s)\s+(shorter|longer|less|more)\b", part)
    if m:
        amount = {"a": 1.0, "an": 1.0, "one": 1.0, "half a": 0.5}.get(m.group(1))
        n = ctx.frames(amount if amount is not None else float(m.group(1)), m.group(2))
        sign = -1 if m.group(3) in ("shorter", "less") else 1
        return [po.SetDuration(scene=i, delta_frames=sign * n) for i in lengths()]
    m = re.search(r"(?:\bto\b|\bbe\b|\blast\b|^|\s)\s*" + _N + r"\s*" + _UNIT + r"(?:\s+long)?\s*$", part) or re.search(
        r"^(?:make\s+(?:it\s+)?|give\s+(?:it\s+)?)?" + _N + r"\s*" + _UNIT + r"(?:\s+long)?\s+(?:for|on|in|to)\s+(?:the\s+)?scene\b", part
    )
    if m and re.search(r"\b(?:long|last|lasts|make|set|to|be|length|duration|only|just|give|for)\b|^scene", part):
        n = ctx.frames(float(m.group(1)), m.group(2))
        return [po.SetDuration(scene=i, n_frames=n) for i in lengths()]

    ops: list[po.PlanOp] = []
    for pattern, motion in _CAMERA_WORDS:
        if re.search(pattern, part):
            ops += [po.SetCamera(scene=i, motion=motion) for i in _need_scenes(ctx, scenes, every, "move the camera in")]
            return ops

    for pattern, effect in _EFFECT_WORDS:
        if re.search(pattern, part):
            off = re.search(r"\b(?:no|remove|without|drop|less|turn off|get rid of|lose|kill)\b", part)
            if off:
                strength = 0.25 if re.search(r"\bless\b", part) else 0.0
            elif re.search(r"\bmore\b", part) and k == 1.0:
                strength = 0.75
            else:
                strength = min(1.0, 0.5 * k)
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
            for i in _need_scenes(ctx, scenes, every, f"add a {m.group(1)} to")
        ]

    m = re.search(
        r"\b(?:remove|clear|delete|no)\s+(?:the\s+)?(?:voice[- ]?(?:over)?|narration)(?:\s+lines?)?", part
    )
    if m:
        return [po.ClearVoiceLines(scene=i) for i in _need_scenes(ctx, scenes, every, "clear the voice-over of")]

    for name, preset in PRESETS.items():
        if re.search(r"\b(?:" + preset.words + r")\b", part):
            if name in ctx.presets:
                return []  # "calm and peaceful": one preset, said twice
            ctx.presets.add(name)
            return _preset_ops(ctx, name, k, scenes)

    targets_all: list[int | None] = [None] if scenes is None else list(scenes)
    if re.search(r"\bmonochrome\b", part):
        return [po.SetGrade(scene=i, saturation=0.0) for i in targets_all]
    if re.search(r"\b(?:in color|back to color|full color|color again|recolou?r|colorize)\b", part):
        return [po.SetGrade(scene=i, saturation=1.0) for i in targets_all]
    delta: dict[str, float] = {}
    for pattern, d in _GRADE_WORDS:
        if re.search(pattern, part):
            for key, v in d.items():
                delta.setdefault(key, round(v * k, 6))
    if delta:
        ops += _grade_op(scenes, **delta)

    if re.search(r"\b(?:slower|longer|lengthen|extend|linger|slow (?:it |this |that )?down)\b", part):
        ops += [po.SetDuration(scene=i, factor=round(1 + 0.25 * k, 4)) for i in _need_scenes(ctx, scenes, every, "make slower")]
    elif re.search(r"\b(?:faster|shorter|shorten|quicker|snappier|tighter|speed (?:it |this |that )?up)\b", part):
        ops += [
            po.SetDuration(scene=i, factor=round(1 / (1 + 0.25 * k), 4))
            for i in _need_scenes(ctx, scenes, every, "make faster")
        ]
    return ops or None


_VOCAB = _vocabulary()


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
    "'The scene with the cat' is the scene whose prompt, source or text mentions a cat. Earlier turns "
    "of the conversation are given: 'and scene 4 too' repeats the previous turn's scene changes on "
    "scene 4. Mood and genre words map to presets (use these values, scaled by 'a bit' 0.5 or 'a lot' 2): "
    "{presets}. If the request is not about the plan, call no tool and say why."
)


def _preset_text() -> str:
    parts = []
    for name, p in PRESETS.items():
        bits = [f"adjust_grade {json.dumps(dict(p.grade))}"]
        if p.monochrome:
            bits.insert(0, "set_grade saturation 0")
        bits += [f"set_effect {e} {v}" for e, v in p.effects.items()]
        music = {"mood": p.music_mood} | ({"tempo_factor": p.tempo_factor} if p.tempo_factor else {})
        bits.append(f"set_music {json.dumps(music)}")
        if p.pacing:
            bits.append(f"set_duration factor {p.pacing} on every scene")
        parts.append(f"{name}: " + ", ".join(bits))
    return "; ".join(parts)


def system_prompt(plan: Mapping[str, Any]) -> str:
    """What both providers are told: the rules, the presets and the plan's scene summaries."""
    return SYSTEM_PROMPT.format(presets=_preset_text()) + "\n\nThe plan:\n" + plan_summary(plan)


def conversation_messages(conversation: Sequence[Mapping[str, Any]], message: str) -> list[dict[str, str]]:
    """The turns so far as user/assistant messages (what was asked, what was done), then `message`."""
    out: list[dict[str, str]] = []
    for turn in conversation:
        request = str(turn.get("request") or "").strip()
        if not request:
            continue
        if turn.get("restored") is not None or request == "undo":
            done = f"Undid the previous edit (restored version {turn.get('restored')})."
        else:
            ops = turn.get("ops") or []
            done = "Applied: " + "; ".join(json.dumps(o, sort_keys=True) for o in ops) if ops else "No change."
        out += [{"role": "user", "content": request}, {"role": "assistant", "content": done}]
    return [*out, {"role": "user", "content": message}]


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
                    "text": [o.get("text") for o in s.get("overlays") or [] if isinstance(o, Mapping)] or None,
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

    def propose(
        self, plan: Mapping[str, Any], message: str, conversation: Sequence[Mapping[str, Any]] = ()
    ) -> list[po.PlanOp]:
        try:
            # The SDK types its arguments with TypedDicts; ours are the same shapes as plain dicts.
            create: Any = self._client.messages.create
            reply = create(
                model=self.model,
                max_tokens=self.max_tokens,
                system=system_prompt(plan),
                messages=conversation_messages(conversation, message),
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

    def propose(
        self, plan: Mapping[str, Any], message: str, conversation: Sequence[Mapping[str, Any]] = ()
    ) -> list[po.PlanOp]:
        try:
            create: Any = self._client.chat.completions.create
            reply = create(
                model=self.model,
                messages=[
                    {"role": "system", "content": system_prompt(plan)},
                    *conversation_messages(conversation, message),
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
