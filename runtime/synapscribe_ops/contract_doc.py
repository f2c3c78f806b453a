"""docs/contract.md, the client contract's document, rendered from the models in synapscribe.contract.

`synapscribe contract --markdown` prints it (`make contract-doc` writes it). Everything a field,
message or code says comes from synapscribe.contract (docstrings, ERROR_CODE_WHEN, ORDER_RULES) and the
limits from platform.yaml; this module holds only the document's frame and one example of each
message, which is parsed with the contract's own parsers, so an example that no longer matches
the models stops the generator. The output depends on nothing but those files: no dates, no
environment, models in the order the contract declares them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, get_args

from pydantic import BaseModel
from synapscribe.contract import (
    ERROR_CODE_WHEN,
    ORDER_RULES,
    ClientMessage,
    ErrorCode,
    ServerMessage,
    parse_client_message,
    parse_server_message,
)
from synapscribe.platform import PlatformConfig, load_platform

GENERATOR = "synapscribe contract --markdown > docs/contract.md"

#: One example of each message, by its `action` or `type` (checked against the models).
EXAMPLES: dict[str, dict[str, Any]] = {
    "createUpload": {
        "action": "createUpload",
        "kind": "lecture",
        "filename": "photosynthesis.mp3",
        "contentType": "audio/mpeg",
        "sizeBytes": 4194304,
    },
    "getLecture": {"action": "getLecture", "lectureId": "lec_5f0c2b1e9a7d4c3b8e6f1a2d3c4b5a69"},
    "startSession": {"action": "startSession", "lectureId": "lec_5f0c2b1e9a7d4c3b8e6f1a2d3c4b5a69"},
    "query": {
        "action": "query",
        "sessionId": "ses_0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "requestId": "q-1",
        "text": "What does chlorophyll absorb?",
    },
    "endSession": {"action": "endSession", "sessionId": "ses_0a1b2c3d4e5f60718293a4b5c6d7e8f9"},
    "deleteLecture": {"action": "deleteLecture", "lectureId": "lec_5f0c2b1e9a7d4c3b8e6f1a2d3c4b5a69"},
    "cancel": {"action": "cancel", "sessionId": "ses_0a1b2c3d4e5f60718293a4b5c6d7e8f9", "requestId": "q-1"},
    "listLectures": {"action": "listLectures"},
    "getLectureAudio": {"action": "getLectureAudio", "lectureId": "lec_5f0c2b1e9a7d4c3b8e6f1a2d3c4b5a69"},
    "lectureAudio": {
        "type": "lectureAudio",
        "lectureId": "lec_5f0c2b1e9a7d4c3b8e6f1a2d3c4b5a69",
        "url": "https://synapscribe-dev-lectures.s3.eu-west-1.amazonaws.com/lectures/eu-west-1:7d1c0f4e/lec_5f0c.mp3?…",
        "expiresIn": 300,
    },
    "getSession": {"action": "getSession", "sessionId": "ses_0a1b2c3d4e5f60718293a4b5c6d7e8f9"},
    "lectures": {
        "type": "lectures",
        "lectures": [
            {
                "lectureId": "lec_5f0c2b1e9a7d4c3b8e6f1a2d3c4b5a69",
                "status": "ready",
                "filename": "photosynthesis.mp3",
                "durationSeconds": 612.4,
                "contextMode": "audio",
                "createdAt": 1796209200,
                "sessionId": "ses_0a1b2c3d4e5f60718293a4b5c6d7e8f9",
            }
        ],
    },
    "sessionTurns": {
        "type": "sessionTurns",
        "sessionId": "ses_0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "lectureId": "lec_5f0c2b1e9a7d4c3b8e6f1a2d3c4b5a69",
        "contextMode": "audio",
        "expiresAt": 1796212800,
        "turns": [
            {
                "requestId": "q-1",
                "question": "What does chlorophyll absorb?",
                "answer": "Chlorophyll absorbs red and blue light.",
                "voice": False,
                "at": 1796209260,
            }
        ],
    },
    "uploadUrl": {
        "type": "uploadUrl",
        "uploadId": "lec_5f0c2b1e9a7d4c3b8e6f1a2d3c4b5a69",
        "key": "lectures/eu-west-1:7d1c0f4e/lec_5f0c2b1e9a7d4c3b8e6f1a2d3c4b5a69.mp3",
        "url": "https://synapscribe-dev-lectures.s3.eu-west-1.amazonaws.com/",
        "fields": {
            "key": "lectures/eu-west-1:7d1c0f4e/lec_5f0c2b1e9a7d4c3b8e6f1a2d3c4b5a69.mp3",
            "policy": "…",
        },
        "expiresIn": 60,
        "maxBytes": 4194304,
    },
    "lecture": {
        "type": "lecture",
        "lectureId": "lec_5f0c2b1e9a7d4c3b8e6f1a2d3c4b5a69",
        "status": "ready",
        "durationSeconds": 612.4,
        "contextMode": "audio",
    },
    "session": {
        "type": "session",
        "sessionId": "ses_0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "lectureId": "lec_5f0c2b1e9a7d4c3b8e6f1a2d3c4b5a69",
        "contextMode": "audio",
        "expiresAt": 1796212800,
    },
    "transcript": {"type": "transcript", "requestId": "q-2", "text": "What does chlorophyll absorb?"},
    "answerDelta": {"type": "answerDelta", "requestId": "q-1", "text": "Chlorophyll absorbs "},
    "audio": {
        "type": "audio",
        "requestId": "q-1",
        "seq": 0,
        "url": "https://synapscribe-dev-lectures.s3.eu-west-1.amazonaws.com/responses/ses_0a1b/q-1/0000.mp3?…",
        "text": "Chlorophyll absorbs red and blue light.",
    },
    "answer": {
        "type": "answer",
        "requestId": "q-1",
        "text": "Chlorophyll absorbs red and blue light. [from 01:00-02:00]",
        "citations": [{"startSeconds": 60.0, "endSeconds": 120.0}],
        "audio": [
            "https://synapscribe-dev-lectures.s3.eu-west-1.amazonaws.com/responses/ses_0a1b/q-1/0000.mp3?…"
        ],
        "ttsEngine": "gtts",
        "timings": {"firstTokenMs": 412.0, "firstAudioMs": 1190.5, "totalMs": 2875.3},
    },
    "warming": {
        "type": "warming",
        "requestId": "q-1",
        "estimatedSeconds": 480,
        "waitSeconds": 960,
        "message": "starting a server, about 480 s; the answer follows when it is ready",
    },
    "sessionEnded": {"type": "sessionEnded", "sessionId": "ses_0a1b2c3d4e5f60718293a4b5c6d7e8f9"},
    "lectureDeleted": {"type": "lectureDeleted", "lectureId": "lec_5f0c2b1e9a7d4c3b8e6f1a2d3c4b5a69"},
    "error": {
        "type": "error",
        "code": "lecture_not_ready",
        "message": "lecture lec_5f0c2b1e9a7d4c3b8e6f1a2d3c4b5a69 is transcribing, not ready",
        "requestId": "q-3",
    },
}

INTRO = """\
This is the contract browser and mobile clients are written against. The deployed API (API Gateway
WebSocket API) and the local stack both speak it, with the same JSON shapes. Every message is one
JSON object in one WebSocket text frame; field names are camelCase. API Gateway routes on
`$request.body.action`.

## Connecting

- Deployed: `wss://<api-id>.execute-api.<region>.amazonaws.com/<stage>`. The `$connect` route uses
  IAM authorization: the client signs the connect request (SigV4) with the temporary credentials
  that the Cognito identity pool gives it (unauthenticated identities are allowed). The
  connection's owner is `requestContext.identity.cognitoIdentityId`.
- Local stack: `ws://127.0.0.1:<port>/?identity=<any-string>`; the `identity` query parameter
  stands in for the Cognito identity. A missing identity gets a fresh random one.
- Lectures and sessions belong to the identity that created them. Any id that belongs to another
  identity is answered exactly as an unknown id (`not_found`), so ids cannot be probed.
"""


def members(union: Any) -> list[type[BaseModel]]:
    """The models of a discriminated union (`Annotated[A | B | …, Field(...)]`), in declared order."""
    inner = get_args(union)[0]
    return [m for m in get_args(inner) if isinstance(m, type) and issubclass(m, BaseModel)]


def message_name(model: type[BaseModel]) -> str:
    """The `action` or `type` literal that names a message on the wire."""
    field = model.model_fields.get("action") or model.model_fields["type"]
    (name,) = get_args(field.annotation)
    return str(name)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _code(value: Any) -> str:
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _type(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    """A JSON Schema property as a short type name (`string`, `"a" or "b"`, object `Timings`)."""
    if "$ref" in prop and "enum" in defs.get(prop["$ref"].rsplit("/", 1)[-1], {}):
        return _type(defs[prop["$ref"].rsplit("/", 1)[-1]], defs)
    if "const" in prop:
        return _code(prop["const"])
    if "enum" in prop:
        return " or ".join(_code(v) for v in prop["enum"])
    if "$ref" in prop:
        return f"object `{prop['$ref'].rsplit('/', 1)[-1]}`"
    if "anyOf" in prop:
        parts = [_type(p, defs) for p in prop["anyOf"] if p.get("type") != "null"]
        return " or ".join(parts)
    kind = prop.get("type", "any")
    if kind == "array":
        return f"array of {_type(prop.get('items', {}), defs)}"
    if kind == "object" and "additionalProperties" in prop:
        return f"object of {_type(prop['additionalProperties'], defs)}"
    return str(kind)


_CONSTRAINTS = (
    ("minLength", "length ≥ {}"),
    ("maxLength", "length ≤ {}"),
    ("exclusiveMinimum", "> {}"),
    ("minimum", "≥ {}"),
    ("maximum", "≤ {}"),
    ("pattern", "matches `{}`"),
)


def _constraints(prop: dict[str, Any]) -> str:
    found = [prop, *prop.get("anyOf", [])]
    return "; ".join(t.format(p[key]) for p in found for key, t in _CONSTRAINTS if key in p)


def _presence(name: str, prop: dict[str, Any], required: Iterable[str], *, client: bool) -> str:
    if name in required:
        return "required"
    if "default" not in prop:
        return "optional"
    default = prop["default"]
    if default is None:
        return "optional" if client else "when set"
    return f"optional, default {_code(default)}" if client else "always"


def field_table(model: type[BaseModel], *, client: bool) -> list[str]:
    schema = model.model_json_schema()
    required = schema.get("required", [])
    rows = ["| field | type | presence | constraints | meaning |", "| --- | --- | --- | --- | --- |"]
    for name, prop in schema.get("properties", {}).items():
        if name in ("action", "type") and "const" in prop:
            continue  # the message's name: shown in its heading and example
        presence = _presence(name, prop, required, client=client)
        cells = (
            f"`{name}`",
            _type(prop, schema.get("$defs", {})),
            presence,
            _constraints(prop),
            prop.get("description", ""),
        )
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return rows


def _example(name: str, *, client: bool, platform: PlatformConfig) -> list[str]:
    example = EXAMPLES.get(name)
    if example is None:
        return ["No example yet: add one to `EXAMPLES` in `runtime/synapscribe_ops/contract_doc.py`.", ""]
    if client:
        parse_client_message(json.dumps(example), platform)
    else:
        parse_server_message(example)
    return ["```json", json.dumps(example, ensure_ascii=False), "```", ""]


def _doc(model: type[BaseModel]) -> str:
    return " ".join((model.__doc__ or "").split())


def _answered_by(model: type[BaseModel]) -> str:
    return str(getattr(model, "answered_by", ""))


def _section(model: type[BaseModel], *, client: bool, platform: PlatformConfig) -> list[str]:
    name = message_name(model)
    lines = [f"### `{name}`", "", _doc(model), ""]
    if client and _answered_by(model):
        lines += [f"Answered by: {_answered_by(model)}.", ""]
    table = field_table(model, client=client)
    lines += [*table, ""] if len(table) > 2 else ["No fields besides its name.", ""]
    return lines + _example(name, client=client, platform=platform)


def _nested(models: Iterable[type[BaseModel]]) -> list[type[BaseModel]]:
    """Objects used inside messages (e.g. `Timings`), each once, in first-use order."""
    seen: dict[str, type[BaseModel]] = {}
    for model in models:
        for field in model.model_fields.values():
            for candidate in (field.annotation, *get_args(field.annotation)):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    seen.setdefault(candidate.__name__, candidate)
    return list(seen.values())


def _summary(models: list[type[BaseModel]], *, client: bool) -> list[str]:
    head = "| action | fields | answered by |" if client else "| type | fields |"
    rows = [head, "| --- | --- | --- |" if client else "| --- | --- |"]
    for model in models:
        fields = ", ".join(f"`{f}`" for f in model.model_fields if f not in ("action", "type"))
        cells = [f"[`{message_name(model)}`](#{message_name(model).lower()})", fields or "—"]
        if client:
            cells.append(_answered_by(model) or "—")
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return rows


def _limits(platform: PlatformConfig) -> list[str]:
    limits = platform.limits
    rows = [
        ("message", "limits.message_max_bytes", f"{limits.message_max_bytes} bytes per message"),
        (
            "frame",
            "limits.frame_max_bytes",
            f"{limits.frame_max_bytes} bytes (a browser sends a message as one frame)",
        ),
        (
            "inline question audio",
            "limits.inline_audio_max_bytes",
            f"{limits.inline_audio_max_bytes} bytes decoded",
        ),
        ("`lecture` upload", "limits.lecture_max_bytes", f"{limits.lecture_max_bytes} bytes"),
        ("`query` upload", "limits.query_max_bytes", f"{limits.query_max_bytes} bytes"),
        ("spoken question", "limits.query_max_seconds", f"{limits.query_max_seconds} s"),
        ("presigned POST", "limits.upload_url_expiry_seconds", f"valid {limits.upload_url_expiry_seconds} s"),
        (
            "`audio` urls",
            "limits.response_url_expiry_seconds",
            f"valid {limits.response_url_expiry_seconds} s",
        ),
    ]
    types = ", ".join(f"`{t}`" for t in sorted(limits.accepted_content_types))
    out = ["| what | limit | platform.yaml |", "| --- | --- | --- |"]
    out += [f"| {what} | {value} | `{key}` |" for what, key, value in rows]
    return [*out, "", f"Accepted upload content types (`limits.accepted_content_types`): {types}.", ""]


def render(platform: PlatformConfig | None = None) -> str:
    """The whole document (ends with one newline)."""
    platform = platform or load_platform()
    clients, servers = members(ClientMessage), members(ServerMessage)
    lines = [
        "# SynapScribe client contract (WebSocket)",
        "",
        f"<!-- Generated from runtime/synapscribe/contract/ by `{GENERATOR}`"
        " (or `make contract-doc`); do not edit by hand. -->",
        "",
        INTRO,
        "## Client to server",
        "",
        *_summary(clients, client=True),
        "",
    ]
    for model in clients:
        lines += _section(model, client=True, platform=platform)
    lines += ["## Server to client", "", *_summary(servers, client=False), ""]
    for model in servers:
        lines += _section(model, client=False, platform=platform)
    for model in _nested(servers):
        lines += [
            f"### Object `{model.__name__}`",
            "",
            _doc(model),
            "",
            *field_table(model, client=False),
            "",
        ]
    lines += ["## Order rules", "", *(f"- {_cell(rule)}" for rule in ORDER_RULES), ""]
    lines += ["## Error codes", "", "| code | when |", "| --- | --- |"]
    lines += [f"| `{code.value}` | {_cell(ERROR_CODE_WHEN.get(code, ''))} |" for code in ErrorCode]
    lines += ["", "## Limits", "", *_limits(platform)]
    return "\n".join(lines).rstrip("\n") + "\n"
