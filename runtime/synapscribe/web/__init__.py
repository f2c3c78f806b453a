"""The student page: static files (`static/`, plain ES modules, no build step) and the
`config.json` it reads at start-up.

The page talks only to the public contract: the WebSocket API and the presigned S3 URLs it hands
out. Locally it connects with the stack's `identity` query parameter; deployed it gets guest
credentials with Cognito's basic flow and signs `$connect` itself (`static/sigv4.js`).
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any, Literal

from synapscribe.platform import PlatformConfig

STATIC: Traversable = files("synapscribe.web") / "static"

#: The files the page consists of, with their media types (nothing else is served).
CONTENT_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "cognito.js": "text/javascript; charset=utf-8",
    "connection.js": "text/javascript; charset=utf-8",
    "errors.js": "text/javascript; charset=utf-8",
    "player.js": "text/javascript; charset=utf-8",
    "recorder.js": "text/javascript; charset=utf-8",
    "sigv4.js": "text/javascript; charset=utf-8",
}

#: Opus at 16 kbit/s: a 10 s question is ~20 KB, ~27 KB in base64, inside API Gateway's 32 KB
#: frame; Chromium's default (~128 kbit/s) made 2.5 s of speech 40 KB. Still clear speech for ASR.
AUDIO_BITS_PER_SECOND = 16_000


def page_config(
    platform: PlatformConfig,
    websocket_url: str,
    *,
    mode: Literal["local", "deployed"],
    region: str,
    identity_pool_id: str | None = None,
    guest_role_arn: str | None = None,
) -> dict[str, Any]:
    """What `config.json` holds for one stack."""
    if mode == "deployed" and not (identity_pool_id and guest_role_arn):
        raise ValueError("a deployed page needs the identity pool id and the guest role ARN")
    limits = platform.limits
    config: dict[str, Any] = {
        "mode": mode,
        "websocketUrl": websocket_url,
        "region": region,
        "audioBitsPerSecond": AUDIO_BITS_PER_SECOND,
        "limits": {
            "lectureMaxBytes": limits.lecture_max_bytes,
            "queryMaxBytes": limits.query_max_bytes,
            "inlineAudioMaxBytes": limits.inline_audio_max_bytes,
            "frameMaxBytes": limits.frame_max_bytes,
            "queryMaxSeconds": limits.query_max_seconds,
        },
    }
    if mode == "deployed":
        config.update(identityPoolId=identity_pool_id, guestRoleArn=guest_role_arn)
    return config


def read_static(name: str) -> bytes:
    """One of the page's files (KeyError for anything not in CONTENT_TYPES)."""
    if name not in CONTENT_TYPES:
        raise KeyError(name)
    return (STATIC / name).read_bytes()
