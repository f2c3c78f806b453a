"""The voices the TTS service speaks: one name per language/accent, known to every engine.

A voice name is what clients send as `voice`. OpenAI's voice names (`alloy`, `nova`, ...) are
accepted as aliases of the default voice, so OpenAI clients work unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Voice:
    name: str
    gtts_lang: str
    gtts_tld: str | None  # None: the service's configured tld
    espeak_voice: str


VOICES: dict[str, Voice] = {
    v.name: v
    for v in (
        Voice("en", "en", None, "en-us"),
        Voice("en-us", "en", "com", "en-us"),
        Voice("en-gb", "en", "co.uk", "en-gb"),
        Voice("en-au", "en", "com.au", "en-us"),
        Voice("fr", "fr", None, "fr-fr"),
        Voice("de", "de", None, "de"),
        Voice("es", "es", None, "es"),
        Voice("it", "it", None, "it"),
        Voice("pt", "pt", None, "pt"),
        Voice("nl", "nl", None, "nl"),
        Voice("pl", "pl", None, "pl"),
        Voice("sv", "sv", None, "sv"),
    )
}

OPENAI_VOICE_ALIASES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse"}
)


class UnknownVoiceError(ValueError):
    pass


def resolve_voice(name: str, default_voice: str) -> Voice:
    """The voice for a request's `voice` (case-insensitive); UnknownVoiceError names the choices."""
    key = name.strip().lower()
    if key in OPENAI_VOICE_ALIASES:
        key = default_voice
    voice = VOICES.get(key)
    if voice is None:
        raise UnknownVoiceError(
            f"unknown voice {name[:40]!r}; use one of {', '.join(VOICES)} "
            f"(OpenAI voice names mean {default_voice!r})"
        )
    return voice
