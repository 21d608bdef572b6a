"""Generation providers: video (Runway, Google Veo, the local compositor), voice (ElevenLabs with
voice cloning, local espeak-ng), music (ElevenLabs, local synthesis) and sound effects (ElevenLabs,
a local synthesized library), behind one small interface per medium.

    LookalikeError
    └── ProviderError(transient=True)    retried with backoff by the Retry middleware
        ProviderError(transient=False)   never retried; the next provider in the fallback order runs

The node calls `generate_scene(scene, start, end, width, height, fps, subject_rgba, seed, settings)`
(or a long-lived `Providers` object's `scene_frames`). Local providers are the defaults; the others
need the `providers` extra (`pip install 'lookalike[providers]'`) and a key setting.
"""

from .audio import conform_music, music_track, sfx_track, voice_track
from .base import (
    EMOTIONS,
    SFX_KINDS,
    AudioResult,
    CallRecord,
    MockProvider,
    MusicProvider,
    MusicRequest,
    SfxProvider,
    SfxRequest,
    VideoProvider,
    VideoRequest,
    VideoResult,
    VoiceProvider,
    VoiceRequest,
)
from .conform import ConformedClip, check_clip
from .hub import Providers, ProviderSettings, SceneClip, generate_scene, hub_for
from .local import EspeakVoice, LocalMusic, LocalSfx, LocalVideo, synth_sfx
from .middleware import Guarded, Metered, RateLimit, Retry, TimeLimit, poll

__all__ = [
    "EMOTIONS",
    "SFX_KINDS",
    "AudioResult",
    "CallRecord",
    "ConformedClip",
    "EspeakVoice",
    "Guarded",
    "LocalMusic",
    "LocalSfx",
    "LocalVideo",
    "Metered",
    "MockProvider",
    "MusicProvider",
    "MusicRequest",
    "ProviderSettings",
    "Providers",
    "RateLimit",
    "Retry",
    "SceneClip",
    "SfxProvider",
    "SfxRequest",
    "TimeLimit",
    "VideoProvider",
    "VideoRequest",
    "VideoResult",
    "VoiceProvider",
    "VoiceRequest",
    "check_clip",
    "conform_music",
    "generate_scene",
    "hub_for",
    "music_track",
    "poll",
    "sfx_track",
    "synth_sfx",
    "voice_track",
]
