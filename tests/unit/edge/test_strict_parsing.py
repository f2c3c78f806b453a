"""Strict edge parsing (issue 18): strict JSON and a message acted on only on its own route."""

from __future__ import annotations

import json

import pytest
from synapscribe.contract import ContractError, parse_client_message, select_route
from synapscribe.edge.config import EdgeDeps
from synapscribe.edge.websocket_handler import handle

from .edge_support import AgentCoreRecorder, one, pushed, table_snapshot, ws_event

UPLOAD = {"action": "createUpload", "kind": "lecture", "filename": "l.mp3", "contentType": "audio/mpeg"}


@pytest.mark.parametrize(
    ("frame", "detail"),
    [
        ('{"action":"createUpload","kind":"lecture","filename":"l.mp3","contentType":"audio/mpeg",'
         '"sizeBytes":1000,"pad":NaN}', "NaN is not a JSON number"),
        ('{"action":"getLecture","lectureId":"lec_1","x":-Infinity}', "-Infinity is not a JSON number"),
        ('{"action":"getLecture","lectureId":"lec_1","action":"createUpload"}', "'action' appears twice"),
        ('{"action":"getLecture","lectureId":"lec_1","o":{"a":1,"a":2}}', "'a' appears twice"),
    ],
)  # fmt: skip
def test_python_only_json_is_bad_request(frame: str, detail: str) -> None:
    with pytest.raises(ContractError) as err:
        parse_client_message(frame)
    assert err.value.code == "bad_request" and detail in err.value.message
    assert select_route(frame) == "$default"


def test_route_selection_is_api_gateways() -> None:
    assert select_route(json.dumps({**UPLOAD, "sizeBytes": 5})) == "createUpload"
    assert select_route('{"action":"nope"}') == "$default"
    assert select_route("[1]") == "$default" and select_route("not json") == "$default"
    assert select_route('{"action":"query"}', frozenset({"getLecture"})) == "$default"


def test_nan_upload_on_default_stores_nothing(deps: EdgeDeps, alice: str) -> None:
    before = table_snapshot(deps)
    frame = json.dumps({**UPLOAD, "sizeBytes": 1000, "pad": float("nan")})
    msg = one(deps, alice, frame)
    assert msg["code"] == "bad_request" and "NaN" in msg["message"]
    assert table_snapshot(deps) == before


@pytest.mark.parametrize("route", ["$default", "getLecture", "query"])
def test_action_must_match_its_route(
    deps: EdgeDeps, alice: str, agentcore: AgentCoreRecorder, route: str
) -> None:
    """What would be a createUpload on the cheap `$default` (or another action's) route is refused:
    each route's throttle binds its own action."""
    before = table_snapshot(deps)
    body = json.dumps({**UPLOAD, "sizeBytes": 1000, "requestId": "r-1"})
    assert handle(ws_event(route, alice, body=body, routed=False), deps)["statusCode"] == 200
    (msg,) = pushed(alice)
    assert msg["code"] == "bad_request" and "arrived on route" in msg["message"], msg
    assert msg["requestId"] == "r-1"
    assert table_snapshot(deps) == before
    # On its own route the same message is served.
    assert one(deps, alice, body)["type"] == "uploadUrl"
