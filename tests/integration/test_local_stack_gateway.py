"""The local gateway against a recording handler: routing, event shapes, @connections, limits."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from synapscribe.connections import ConnectionGone, ConnectionPusher
from synapscribe.contract import ACTIONS, SessionEnded
from synapscribe_local.gateway import SOURCE_HEADER, Gateway
from synapscribe_local.supervisor import free_port
from synapscribe_ops.smoke.client import ClientError, StackClient, fragments
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

pytestmark = pytest.mark.integration


class Recorder:
    """A handler that records events and answers via @connections like the real one does."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.pusher: ConnectionPusher | None = None

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        with self.lock:
            self.events.append(event)
        ctx = event["requestContext"]
        assert context.get_remaining_time_in_millis() > 0
        if ctx["routeKey"] == "$connect":
            identity = (event.get("queryStringParameters") or {}).get("identity")
            return {"statusCode": 403 if identity == "forbidden" else 200}
        if ctx["eventType"] == "MESSAGE":
            if event["body"] == "crash":
                raise RuntimeError("handler bug")
            assert self.pusher is not None
            self.pusher.post(ctx["connectionId"], SessionEnded(sessionId=ctx["routeKey"].strip("$")))
        return {"statusCode": 200}


@pytest.fixture
async def gateway(aws_env: None) -> AsyncIterator[tuple[Gateway, Recorder]]:
    recorder = Recorder()
    gw = Gateway(recorder, port=free_port(), connections_port=free_port(), route_keys=ACTIONS)
    recorder.pusher = ConnectionPusher(gw.connections_endpoint)
    await gw.start()
    yield gw, recorder
    await gw.stop()


async def test_routes_like_api_gateway(gateway: tuple[Gateway, Recorder]) -> None:
    gw, recorder = gateway
    client = await StackClient.connect(gw.url, identity="alice")
    try:
        for frame, route in [
            (json.dumps({"action": "getLecture", "lectureId": "x"}), "getLecture"),
            (json.dumps({"action": "nope"}), "default"),
            ("{not json", "default"),
            (json.dumps([1, 2]), "default"),
            (json.dumps({"action": 5}), "default"),
            # What Python reads but JSON is not (NaN, a key twice) is not routed to its action.
            ('{"action":"getLecture","lectureId":"x","pad":NaN}', "default"),
            ('{"action":"getLecture","lectureId":"x","action":"getLecture"}', "default"),
        ]:
            await client.send(frame)
            reply = await client.wait_type("sessionEnded", within=5)
            assert reply.data == {"type": "sessionEnded", "sessionId": route}
    finally:
        await client.close()
    await asyncio.sleep(0.3)
    kinds = [e["requestContext"]["routeKey"] for e in recorder.events]
    assert kinds[0] == "$connect" and kinds[-1] == "$disconnect"
    connect_event = recorder.events[0]
    assert connect_event["queryStringParameters"] == {"identity": "alice"}
    assert connect_event["requestContext"]["eventType"] == "CONNECT"
    # The client's address, as API Gateway gives it: the handler's per-address message rate.
    messages = [e for e in recorder.events if e["requestContext"]["eventType"] == "MESSAGE"]
    assert messages and all(e["requestContext"]["identity"]["sourceIp"] == "127.0.0.1" for e in messages)
    message = recorder.events[1]
    assert message["body"] == json.dumps({"action": "getLecture", "lectureId": "x"})
    assert message["requestContext"]["connectionId"] == connect_event["requestContext"]["connectionId"]
    assert message["isBase64Encoded"] is False


@pytest.mark.parametrize("trusted", [False, True])
async def test_the_source_header_counts_only_in_test_mode(aws_env: None, trusted: bool) -> None:
    recorder = Recorder()
    gw = Gateway(
        recorder,
        port=free_port(),
        connections_port=free_port(),
        route_keys=ACTIONS,
        trust_source_header=trusted,
    )
    recorder.pusher = ConnectionPusher(gw.connections_endpoint)
    await gw.start()
    try:
        for header in ("2001:db8::7", ""):
            client = await StackClient.connect(gw.url, identity="alice", headers={SOURCE_HEADER: header})
            await client.close()
    finally:
        await gw.stop()
    identities = [
        e["requestContext"]["identity"]
        for e in recorder.events
        if e["requestContext"]["routeKey"] == "$connect"
    ]
    if trusted:  # an empty header stands for an event without an address (the handler refuses it)
        assert identities[0]["sourceIp"] == "2001:db8::7" and "sourceIp" not in identities[1]
    else:
        assert [i["sourceIp"] for i in identities] == ["127.0.0.1", "127.0.0.1"]


async def test_connect_refused_by_handler(gateway: tuple[Gateway, Recorder]) -> None:
    gw, _ = gateway
    with pytest.raises(InvalidStatus) as info:
        async with connect(gw.url + "/?identity=forbidden"):
            pass
    assert info.value.response.status_code == 403
    with pytest.raises(ClientError):
        await StackClient.connect(gw.url, identity="forbidden")


async def test_binary_and_oversize_frames_answered_without_closing(gateway: tuple[Gateway, Recorder]) -> None:
    gw, recorder = gateway
    client = await StackClient.connect(gw.url, identity="bob")
    try:
        await client.send(b"\x00\x01binary")
        error = await client.wait_type("error", within=5)
        assert error.data is not None and error.data["code"] == "bad_request"
        await client.send(json.dumps({"action": "getLecture", "lectureId": "x" * 200_000}))
        error = await client.wait_type("error", within=5)
        assert error.data is not None and error.data["code"] == "too_large"
        await client.send("crash")  # a handler exception: API Gateway's generic answer
        failure = await client.wait_for(
            lambda r: bool(r.data and "message" in r.data and "type" not in r.data), 5
        )
        assert failure.data is not None and failure.data["message"] == "Internal server error"
        await client.send(json.dumps({"action": "endSession", "sessionId": "s"}))
        assert (await client.wait_type("sessionEnded", within=5)).data == {
            "type": "sessionEnded",
            "sessionId": "endSession",
        }
        assert client.is_open
    finally:
        await client.close()
    # Neither the binary nor the oversize frame reached the handler.
    bodies = [e.get("body") for e in recorder.events if e["requestContext"]["eventType"] == "MESSAGE"]
    assert len(bodies) == 2


async def test_connections_api_with_boto3(gateway: tuple[Gateway, Recorder]) -> None:
    gw, _ = gateway
    api = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=gw.connections_endpoint,
        config=Config(retries={"max_attempts": 1}),
    )
    client = await StackClient.connect(gw.url, identity="carol")
    try:
        await asyncio.sleep(0.1)
        (cid,) = gw.live_connection_ids()
        info = await asyncio.to_thread(api.get_connection, ConnectionId=cid)
        assert info["Identity"]["SourceIp"] == "127.0.0.1"
        await asyncio.to_thread(
            api.post_to_connection, ConnectionId=cid, Data=b'{"type":"sessionEnded","sessionId":"z"}'
        )
        got = await client.wait_type("sessionEnded", within=5)
        assert got.data == {"type": "sessionEnded", "sessionId": "z"}
        await asyncio.to_thread(api.delete_connection, ConnectionId=cid)
        await asyncio.sleep(0.3)
        assert not client.is_open
        pusher = ConnectionPusher(gw.connections_endpoint)
        with pytest.raises(ConnectionGone):
            await asyncio.to_thread(pusher.post, cid, SessionEnded(sessionId="gone"))
        with pytest.raises(api.exceptions.GoneException):
            await asyncio.to_thread(api.post_to_connection, ConnectionId="never-existed=", Data=b"{}")
    finally:
        await client.close()


async def test_long_messages_go_out_in_fragments_and_arrive_whole(gateway: tuple[Gateway, Recorder]) -> None:
    gw, recorder = gateway
    client = await StackClient.connect(gw.url, identity="dave")
    try:
        body = json.dumps({"action": "getLecture", "lectureId": "x", "pad": "é" * 30_000}, ensure_ascii=False)
        assert len(fragments(body)) > 1
        await client.send(body)
        await client.wait_type("sessionEnded", within=5)
    finally:
        await client.close()
    bodies = [e["body"] for e in recorder.events if e["requestContext"]["eventType"] == "MESSAGE"]
    assert bodies == [body]
