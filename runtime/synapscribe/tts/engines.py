"""Speech engines: gTTS (Google Translate's voice, needs the internet) and espeak-ng (offline).

An engine turns text into MP3 bytes, blocking; the service runs it in a worker thread and owns
timeouts across attempts, retries and fall-back (see fallback.py).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Protocol

from synapscribe.tts.voices import Voice


class EngineError(RuntimeError):
    """The engine could not speak this time (network, server error, tool failure)."""


class RateLimitedError(EngineError):
    """The engine's server throttles us (HTTP 429); wait longer before trying again."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EngineUnavailableError(RuntimeError):
    """The engine cannot run on this machine at all (a tool is missing): a start-up error."""


class Engine(Protocol):
    name: str

    def synthesize(self, text: str, voice: Voice) -> bytes:
        """MP3 bytes speaking `text`; raises EngineError."""
        ...


def _retry_after(headers: object) -> float | None:
    value = getattr(headers, "get", lambda _k: None)("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


class GttsEngine:
    """gTTS with a timeout on every HTTP request (gTTS waits forever without one)."""

    name = "gtts"

    def __init__(self, *, timeout_seconds: float, tld: str = "com") -> None:
        self.timeout_seconds = timeout_seconds
        self.tld = tld

    def synthesize(self, text: str, voice: Voice) -> bytes:
        from gtts import gTTS, gTTSError  # imported here: gTTS pulls in requests

        buf = io.BytesIO()
        try:
            gTTS(
                text,
                lang=voice.gtts_lang,
                tld=voice.gtts_tld or self.tld,
                lang_check=False,
                timeout=self.timeout_seconds,
            ).write_to_fp(buf)
        except gTTSError as exc:
            rsp = getattr(exc, "rsp", None)
            status = getattr(rsp, "status_code", None)
            if status == 429:
                raise RateLimitedError(
                    f"gTTS: 429 {exc}", _retry_after(getattr(rsp, "headers", None))
                ) from None
            raise EngineError(f"gTTS: {exc}") from None
        except (OSError, ValueError, AssertionError) as exc:
            raise EngineError(f"gTTS: {type(exc).__name__}: {exc}") from None
        data = buf.getvalue()
        if not data:
            raise EngineError("gTTS: empty audio")
        return data


class EspeakEngine:
    """espeak-ng to WAV, then WAV to MP3 with sox (about 50 ms) or, without sox's MP3 support, ffmpeg."""

    name = "espeak-ng"

    def __init__(self, *, timeout_seconds: float = 20.0, bitrate_kbps: int = 48) -> None:
        self.timeout_seconds = timeout_seconds
        self.bitrate_kbps = bitrate_kbps
        self._encoder: str | None = None

    @staticmethod
    def _sox_writes_mp3() -> bool:
        if shutil.which("sox") is None:
            return False
        try:
            out = subprocess.run(["sox", "-h"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return False
        formats = next((line for line in out.splitlines() if line.startswith("AUDIO FILE FORMATS:")), "")
        return "mp3" in formats.split()

    def check(self) -> None:
        """Pick the MP3 encoder; EngineUnavailableError when a tool is missing."""
        if shutil.which("espeak-ng") is None:
            raise EngineUnavailableError("espeak-ng is not installed (apt-get install espeak-ng)")
        if self._sox_writes_mp3():
            self._encoder = "sox"
        elif shutil.which("ffmpeg") is not None:
            self._encoder = "ffmpeg"
        else:
            raise EngineUnavailableError(
                "espeak-ng needs sox with MP3 support (libsox-fmt-mp3) or ffmpeg to make MP3; neither is installed"
            )

    def _run(self, cmd: list[str], data: bytes | None = None) -> None:
        try:
            proc = subprocess.run(cmd, input=data, capture_output=True, timeout=self.timeout_seconds)
        except FileNotFoundError:
            raise EngineError(f"espeak-ng: {cmd[0]} is not installed") from None
        except subprocess.TimeoutExpired:
            raise EngineError(f"espeak-ng: {cmd[0]} took longer than {self.timeout_seconds} s") from None
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()[-300:]
            raise EngineError(f"espeak-ng: {cmd[0]} failed (exit {proc.returncode}): {err}")

    def synthesize(self, text: str, voice: Voice) -> bytes:
        if self._encoder is None:
            self.check()
        with tempfile.TemporaryDirectory(prefix="synapscribe-tts-") as tmp:
            wav, mp3 = Path(tmp) / "speech.wav", Path(tmp) / "speech.mp3"
            # The text goes through stdin, so text starting with '-' is never read as an option.
            self._run(
                ["espeak-ng", "--stdin", "-v", voice.espeak_voice, "-w", str(wav)], text.encode("utf-8")
            )
            if not wav.exists() or wav.stat().st_size <= 44:
                raise EngineError(f"espeak-ng: no audio for voice {voice.espeak_voice!r}")
            if self._encoder == "sox":
                self._run(["sox", str(wav), "-C", str(self.bitrate_kbps), str(mp3)])
            else:
                cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "wav", "-i"]
                cmd += [str(wav), "-map_metadata", "-1", "-ac", "1", "-c:a", "libmp3lame"]
                self._run([*cmd, "-b:a", f"{self.bitrate_kbps}k", "-f", "mp3", str(mp3)])
            data = mp3.read_bytes() if mp3.exists() else b""
        if not data:
            raise EngineError(f"espeak-ng: {self._encoder} wrote no MP3")
        return data
