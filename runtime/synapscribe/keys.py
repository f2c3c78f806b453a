"""S3 key layout and id generation: the server chooses every key, from ids it made itself."""

from __future__ import annotations

import re
import uuid

from synapscribe.contract import IDENTITY_RE
from synapscribe.platform import PlatformConfig, load_platform

#: The object tag every lecture upload must carry (its POST policy requires it): the bucket's
#: lifecycle rule removes objects tagged pending within a day, and the validator promotes an
#: accepted lecture by setting the tag to VALIDATED. A file nobody validates does not stay.
STATE_TAG = "synapscribe-state"
PENDING = "pending"
VALIDATED = "validated"
PENDING_TAGGING = (
    f"<Tagging><TagSet><Tag><Key>{STATE_TAG}</Key><Value>{PENDING}</Value></Tag></TagSet></Tagging>"
)


def new_id(prefix: str) -> str:
    """A fresh id such as `lec_3f2a…` (matches contract.ID_PATTERN)."""
    return f"{prefix}_{uuid.uuid4().hex}"


def _p(platform: PlatformConfig | None) -> PlatformConfig:
    return platform or load_platform()


def _check_owner(owner: str) -> str:
    if not IDENTITY_RE.fullmatch(owner):
        raise ValueError(f"invalid identity {owner[:40]!r}")
    return owner


def lecture_key(owner: str, lecture_id: str, ext: str, platform: PlatformConfig | None = None) -> str:
    return f"{_p(platform).storage.prefixes.lectures}{_check_owner(owner)}/{lecture_id}.{ext}"


def query_key(owner: str, query_id: str, ext: str, platform: PlatformConfig | None = None) -> str:
    return f"{_p(platform).storage.prefixes.queries}{_check_owner(owner)}/{query_id}.{ext}"


def response_key(session_id: str, request_id: str, seq: int, platform: PlatformConfig | None = None) -> str:
    return f"{_p(platform).storage.prefixes.responses}{session_id}/{request_id}/{seq:04d}.mp3"


def transcript_key(lecture_id: str, platform: PlatformConfig | None = None) -> str:
    return f"{_p(platform).storage.prefixes.transcripts}{lecture_id}.json"


def segments_prefix(lecture_id: str, platform: PlatformConfig | None = None) -> str:
    return f"{_p(platform).storage.prefixes.segments}{lecture_id}/"


_UPLOAD_KEY_RE = re.compile(
    r"^(?P<prefix>[a-z]+/)(?P<owner>[A-Za-z0-9:_.-]{1,128})/(?P<id>[A-Za-z0-9_-]{1,64})\.(?P<ext>[a-z0-9]{1,5})$"
)


def parse_upload_key(key: str, platform: PlatformConfig | None = None) -> tuple[str, str, str, str] | None:
    """(kind, owner, id, ext) of a lecture or query upload key, or None if it is not one."""
    m = _UPLOAD_KEY_RE.fullmatch(key)
    if not m:
        return None
    prefixes = _p(platform).storage.prefixes
    kind = {prefixes.lectures: "lecture", prefixes.queries: "query"}.get(m["prefix"])
    if kind is None:
        return None
    return kind, m["owner"], m["id"], m["ext"]
