"""The student page's own code: the error table against the contract, the SigV4 presign against
botocore's, Cognito's basic flow against moto, `config.json`, the loopback page server, and the
local S3's CORS for the page's cross-origin upload."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, urlsplit

import boto3
import httpx
import pytest
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from required_tools import require_tools
from synapscribe.contract import ErrorCode
from synapscribe.platform import PlatformConfig
from synapscribe.web import CONTENT_TYPES, STATIC, page_config
from synapscribe_local.aws import LOCAL_CREDENTIALS, allow_page_origin, moto_server
from synapscribe_local.page import PageServer, content_security_policy
from synapscribe_local.supervisor import free_port

STATIC_DIR = Path(str(STATIC))


def run_js(script: str) -> Any:
    """Run an ES module script with node (the page's modules import by file URL); its JSON output."""
    require_tools("node")
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def module(name: str) -> str:
    return json.dumps((STATIC_DIR / name).as_uri())


# --------------------------------------------------------------------------- error table


def test_every_contract_error_code_has_words_for_students() -> None:
    source = (STATIC_DIR / "errors.js").read_text()
    block = re.search(r"export const ERROR_TEXT = \{(.*?)\n\};", source, re.S)
    assert block, "errors.js must define ERROR_TEXT"
    keys = re.findall(r"^  ([a-z_]+):", block.group(1), re.M)
    # Exactly the contract's codes: a code added to contract/messages.py without a sentence fails here.
    assert sorted(keys) == sorted(code.value for code in ErrorCode)
    table = run_js(
        f"import {{ ERROR_TEXT }} from {module('errors.js')}; console.log(JSON.stringify(ERROR_TEXT));"
    )
    assert set(table) == {code.value for code in ErrorCode}
    for code, text in table.items():
        assert text.endswith(".") and len(text) > 30 and code not in text, (code, text)


def test_an_unknown_code_still_reads_as_a_sentence() -> None:
    shown = run_js(
        f"import {{ describeError }} from {module('errors.js')};"
        "console.log(JSON.stringify(describeError('some_future_code', 'raw')));"
    )
    assert shown == {"text": "Something went wrong (some_future_code). Try again.", "detail": "raw"}


def test_question_errors_speak_of_questions_and_upload_errors_never_ask_for_a_reload() -> None:
    words = run_js(
        f"import {{ describeError, ERROR_TEXT }} from {module('errors.js')};"
        "const limits = {queryMaxSeconds: 30, lectureMaxMb: 200};"
        "const of = (ctx) => Object.fromEntries(Object.keys(ERROR_TEXT).map(c => [c, describeError(c, 'raw', ctx, limits).text]));"
        "console.log(JSON.stringify({question: of('question'), upload: of('upload')}));"
    )
    for code in ("bad_request", "too_large", "unsupported_media", "not_found"):
        question = words["question"][code]
        assert "upload the lecture" not in question.lower() and "reload" not in question.lower(), question
    assert (
        words["question"]["too_large"]
        == "Your question is too long. Ask a shorter one (a spoken question can be up to 30 s)."
    )
    assert words["question"]["unsupported_media"].endswith("Hold the button while you speak, then let go.")
    for code in ("bad_request", "too_large", "unsupported_media"):
        assert "reload" not in words["upload"][code].lower(), words["upload"][code]
    assert "200 MB" in words["upload"]["too_large"]


def test_blocked_playback_is_reported() -> None:
    """A browser that refuses to play (autoplay policy: NotAllowedError) is not silent about it."""
    out = run_js(
        f"import {{ AnswerPlayer }} from {module('player.js')};"
        "globalThis.Audio = class { addEventListener() {} pause() {}"
        " play() { const e = new Error('no'); e.name = 'NotAllowedError'; return Promise.reject(e); } };"
        "const blocked = []; const player = new AnswerPlayer({ log: [], onBlocked: (id) => blocked.push(id) });"
        "player.add('a', 0, 'u/a/0', ''); await new Promise(r => setTimeout(r, 5));"
        "console.log(JSON.stringify(blocked));"
    )
    assert out == ["a"]


def test_warming_reads_as_starting_a_server_with_the_estimate() -> None:
    """The contract's `warming` (no server was running) shows "starting a server, about N s"."""
    shown = run_js(
        f"import {{ describeWarming }} from {module('errors.js')};"
        "console.log(JSON.stringify(describeWarming(480)));"
    )
    assert shown.lower().startswith("starting a server, about 480 s")
    app = (STATIC_DIR / "app.js").read_text()
    assert 'case "warming":' in app and '["warming", "transcript"' in app
    assert "keepAliveWhileWaiting(turn)" in app  # API Gateway's 10-minute idle timeout


# --------------------------------------------------------------------------- SigV4


@pytest.mark.parametrize(
    ("url", "token"),
    [
        ("wss://abc123.execute-api.eu-west-1.amazonaws.com/prod", "FwoGZXIvYXdzE+/token=="),
        ("wss://abc123.execute-api.eu-west-1.amazonaws.com/prod?lang=en&x=a b", None),
    ],
)
def test_presigned_connect_url_matches_botocore(url: str, token: str | None) -> None:
    when = datetime(2026, 12, 2, 4, 5, 6, tzinfo=UTC)
    creds = Credentials("ASIAEXAMPLE", "secret/with+chars", token)
    signed = run_js(
        f"import {{ presignUrl }} from {module('sigv4.js')};"
        f"const url = await presignUrl({json.dumps(url)}, {{accessKeyId: 'ASIAEXAMPLE',"
        f" secretAccessKey: 'secret/with+chars', sessionToken: {json.dumps(token)}}}, 'eu-west-1',"
        " {date: new Date('2026-12-02T04:05:06Z'), expires: 300});"
        "console.log(JSON.stringify(url));"
    )
    # botocore signs https:// (the WebSocket upgrade is an HTTPS GET to the same host and path).
    https = url.replace("wss://", "https://", 1)
    request = AWSRequest(method="GET", url=https, headers={"Host": urlsplit(https).netloc})
    with mock.patch("botocore.auth.get_current_datetime", return_value=when.replace(tzinfo=None)):
        SigV4QueryAuth(creds, "execute-api", "eu-west-1", expires=300).add_auth(request)
    ours, theirs = urlsplit(signed), urlsplit(request.url)
    assert ours.scheme == "wss" and ours.netloc == theirs.netloc and ours.path == theirs.path
    assert dict(parse_qsl(ours.query)) == dict(parse_qsl(theirs.query))
    assert dict(parse_qsl(ours.query))["X-Amz-Signature"]


# --------------------------------------------------------------------------- Cognito basic flow


@pytest.mark.integration
def test_guest_credentials_use_the_basic_flow_against_moto() -> None:
    with moto_server(free_port()) as endpoint:
        cognito = boto3.client(
            "cognito-identity", endpoint_url=endpoint, region_name="us-east-1", **_local_keys()
        )
        pool = cognito.create_identity_pool(IdentityPoolName="page", AllowUnauthenticatedIdentities=True)
        role_arn = "arn:aws:iam::123456789012:role/guest"
        config = {
            "region": "us-east-1",
            "identityPoolId": pool["IdentityPoolId"],
            "guestRoleArn": role_arn,
            "cognitoEndpoint": endpoint + "/",
            "stsEndpoint": endpoint + "/",
        }
        calls = run_js(
            f"import {{ guestCredentials }} from {module('cognito.js')};"
            "const store = new Map(); const storage = {getItem: k => store.get(k) ?? null, setItem: (k, v) => store.set(k, v)};"
            "const seen = []; const fetchImpl = (url, init) => {"
            " seen.push(init.headers['X-Amz-Target'] ?? new URLSearchParams(init.body).get('Action'));"
            " return fetch(url, init); };"
            f"const config = {json.dumps(config)};"
            "const first = await guestCredentials(config, {storage, fetchImpl});"
            "const again = await guestCredentials(config, {storage, fetchImpl});"
            "console.log(JSON.stringify({first, again, seen, keys: [...store.keys()]}));"
        )
    first, again = calls["first"], calls["again"]
    # GetId once (the identity is kept), then the token and STS each time; never the enhanced
    # flow's GetCredentialsForIdentity, whose session policy has no execute-api.
    assert calls["seen"] == [
        "AWSCognitoIdentityService.GetId",
        "AWSCognitoIdentityService.GetOpenIdToken",
        "AssumeRoleWithWebIdentity",
        "AWSCognitoIdentityService.GetOpenIdToken",
        "AssumeRoleWithWebIdentity",
    ]
    assert first["identityId"] == again["identityId"] and first["identityId"].startswith("us-east-1:")
    # Kept as the AWS SDK for JavaScript keeps a pool's guest identity (a reload keeps the lectures).
    assert calls["keys"] == [f"aws.cognito.identity-id.{config['identityPoolId']}"]
    assert first["accessKeyId"] and first["secretAccessKey"] and first["sessionToken"]
    assert datetime.fromisoformat(first["expiration"].replace("Z", "+00:00")) > datetime.now(UTC)


def _local_keys() -> dict[str, str]:
    return {
        "aws_access_key_id": LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }


# --------------------------------------------------------------------------- config and server


def test_config_carries_the_limits_the_page_enforces(platform: PlatformConfig) -> None:
    config = page_config(platform, "ws://127.0.0.1:1", mode="local", region="us-east-1")
    assert config["limits"]["frameMaxBytes"] == platform.limits.frame_max_bytes == 32768
    assert config["limits"]["inlineAudioMaxBytes"] == platform.limits.inline_audio_max_bytes
    # A 10 s question at the page's bit rate, in base64, fits one frame.
    assert config["audioBitsPerSecond"] * 10 / 8 * 4 / 3 < platform.limits.frame_max_bytes
    assert "identityPoolId" not in config
    with pytest.raises(ValueError, match="guest role ARN"):
        page_config(platform, "wss://x", mode="deployed", region="eu-west-1", identity_pool_id="p")
    deployed = page_config(
        platform, "wss://x", mode="deployed", region="eu-west-1", identity_pool_id="p", guest_role_arn="r"
    )
    assert deployed["identityPoolId"] == "p" and deployed["guestRoleArn"] == "r"


def test_every_page_file_is_served_and_nothing_else(platform: PlatformConfig) -> None:
    shipped = {p.name for p in STATIC_DIR.iterdir()}
    assert shipped == set(CONTENT_TYPES)
    config = page_config(platform, "ws://127.0.0.1:9", mode="local", region="us-east-1")
    csp = content_security_policy("ws://127.0.0.1:9", "http://127.0.0.1:8")
    server = PageServer("127.0.0.1", 0, config, csp)
    server.start()
    try:
        with httpx.Client(base_url=server.url) as http:
            index = http.get("/")
            assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
            assert index.headers["content-security-policy"] == csp
            assert "connect-src 'self' ws://127.0.0.1:9 http://127.0.0.1:8" in csp
            assert http.get("/config.json").json() == config
            assert http.get("/app.js").headers["content-type"].startswith("text/javascript")
            for path in ("/../pyproject.toml", "/__init__.py", "/static/app.js", "/%2e%2e/platform.yaml"):
                assert http.get(path).status_code == 404, path
            head = http.head("/sigv4.js")
            assert head.status_code == 200 and head.content == b""
            assert http.post("/").status_code == 501
    finally:
        server.stop()


@pytest.mark.integration
def test_local_s3_admits_the_page_origin_only() -> None:
    """The upload is a cross-origin POST with a progress listener, so the browser preflights it and
    reads the answer only with Access-Control-Allow-Origin: both come from the bucket's CORS."""
    page, other = "http://127.0.0.1:5555", "http://evil.example"
    with moto_server(free_port()) as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **_local_keys())
        s3.create_bucket(Bucket="page-cors")
        allow_page_origin(s3, "page-cors", page)
        post = s3.generate_presigned_post(
            "page-cors", "lectures/x.mp3", Conditions=[["content-length-range", 1, 100]]
        )
        results: dict[str, Any] = {}

        def upload(origin: str) -> None:
            preflight = httpx.options(
                post["url"], headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
            )
            done = httpx.post(
                post["url"],
                data=post["fields"],
                files={"file": ("x.mp3", b"ID3" + b"\0" * 20)},
                headers={"Origin": origin},
            )
            too_big = httpx.post(
                post["url"],
                data=post["fields"],
                files={"file": ("x.mp3", b"\0" * 200)},
                headers={"Origin": origin},
            )
            results[origin] = (preflight, done, too_big)

        for origin in (page, other):
            thread = threading.Thread(target=upload, args=(origin,))
            thread.start()
            thread.join(30)
    preflight, done, too_big = results[page]
    assert preflight.headers.get("access-control-allow-origin") == page
    assert done.status_code == 204 and done.headers.get("access-control-allow-origin") == page
    # S3's errors carry CORS headers too, so the page can read why the upload was refused.
    assert too_big.status_code == 400 and too_big.headers.get("access-control-allow-origin") == page
    preflight, done, _ = results[other]
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in done.headers


# --------------------------------------------------------------------------- player


def test_sentences_play_in_order_whatever_order_they_arrive_in() -> None:
    """A stand-in Audio element (node has none): `ended` is fired by the script."""
    played = run_js(
        f"import {{ AnswerPlayer }} from {module('player.js')};"
        "const all = [];"
        "globalThis.Audio = class { constructor() { this.l = {}; all.push(this); }"
        " addEventListener(t, f) { (this.l[t] ??= []).push(f); }"
        " fire(t) { for (const f of this.l[t] ?? []) f(); }"
        " play() { setTimeout(() => this.fire('playing'), 0); return Promise.resolve(); } pause() {} };"
        "const all_log = []; const player = new AnswerPlayer({ log: all_log });"
        "const log = { filter: (f) => all_log.filter(e => e.event !== 'queued').filter(f),"
        " get length() { return this.filter(() => true).length; }, at(i) { return this.filter(() => true).at(i); } };"
        "const tick = () => new Promise(r => setTimeout(r, 1));"
        "const playing = () => all.find(a => a.src && log.filter(e => e.event === 'play').length &&"
        " log.at(-1).event === 'play' && a.src.endsWith(`/${log.at(-1).requestId}/${log.at(-1).seq}`));"
        "const end = async () => { await tick(); playing().fire('ended'); await tick(); };"
        "player.begin('a'); player.begin('b');"
        # b's audio and a's seq 1 arrive before a's seq 0; a skips seq 2 (its TTS failed).
        "player.add('b', 0, 'u/b/0', ''); player.add('a', 1, 'u/a/1', ''); await tick();"
        "const before = log.length;"
        "player.add('a', 0, 'u/a/0', ''); await end(); await end();"
        "player.add('a', 3, 'u/a/3', ''); await tick(); const waiting = log.at(-1);"
        "player.finish('a'); await end(); await end();"
        "console.log(JSON.stringify({before, waiting, order: log.filter(e => e.event === 'play')"
        ".map(e => e.requestId + e.seq)}));"
    )
    assert played["before"] == 0  # nothing plays until seq 0 of the first answer is there
    assert played["waiting"]["event"] == "ended"  # seq 3 waits for seq 2 until the answer is complete
    assert played["order"] == ["a0", "a1", "a3", "b0"]


def test_a_stopped_answer_falls_silent_and_the_next_plays_at_once() -> None:
    """Stop (or talk over) an answer: what plays pauses, its later sentences never play, and the
    next answer's first sentence starts without waiting for the stopped one's."""
    out = run_js(
        f"import {{ AnswerPlayer }} from {module('player.js')};"
        "const all = [];"
        "globalThis.Audio = class { constructor() { this.l = {}; this.paused = true; all.push(this); }"
        " addEventListener(t, f) { (this.l[t] ??= []).push(f); }"
        " fire(t) { for (const f of this.l[t] ?? []) f(); }"
        " play() { this.paused = false; setTimeout(() => this.fire('playing'), 0); return Promise.resolve(); }"
        " pause() { this.paused = true; } };"
        "const log = []; const player = new AnswerPlayer({ log });"
        "const tick = () => new Promise(r => setTimeout(r, 1));"
        "player.add('a', 0, 'u/a/0', ''); player.add('a', 1, 'u/a/1', ''); await tick();"
        "const busy = player.busy; player.stop('a');"
        "player.add('a', 2, 'u/a/2', ''); player.add('b', 0, 'u/b/0', ''); await tick();"
        "console.log(JSON.stringify({busy, paused: all[0].paused, after: player.busy,"
        " events: log.filter(e => e.event !== 'queued').map(e => e.event + ':' + e.requestId + e.seq)}));"
    )
    assert out["busy"] is True and out["paused"] is True and out["after"] is True
    assert out["events"] == ["play:a0", "stopped:a0", "stopped:a1", "play:b0"]


def test_local_refuses_a_page_port_it_cannot_use() -> None:
    port = free_port()
    cli = [sys.executable, "-m", "synapscribe.cli", "local", "--port", str(port)]
    same = subprocess.run([*cli, "--page-port", str(port)], capture_output=True, text=True, timeout=60)
    assert same.returncode == 1 and f"--page-port {port} is the WebSocket port" in same.stderr
    assert "READY" not in same.stdout and "PAGE" not in same.stdout
    bad = subprocess.run([*cli, "--page-port", "70000"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--page-port" in bad.stderr
