"""S3's presigned POST policy, enforced in front of moto (which accepts any form upload).

In AWS the policy is what keeps a client to the key the server chose, the declared content type
and the size range. moto ignores it, so without this the local stack would accept an upload to
another identity's key or of any size. This WSGI middleware checks a browser-based upload
(multipart POST to `/{bucket}` carrying `policy`) as S3 does: the SigV4 signature of the policy,
its expiration, every condition, and that every form field is covered by a condition; it answers
S3's XML errors (403 AccessDenied / SignatureDoesNotMatch, 400 EntityTooLarge / EntityTooSmall).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import json
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from werkzeug.formparser import parse_form_data

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: Form fields that S3 does not require a condition for.
_EXEMPT = {"policy", "x-amz-signature", "file", "awsaccesskeyid", "signature"}


class PolicyViolation(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _check_signature(lower: dict[str, str], policy_b64: str, secrets: dict[str, str]) -> None:
    if "awsaccesskeyid" in lower and "x-amz-credential" not in lower:
        # Signature version 2: base64 HMAC-SHA1 of the policy.
        secret = secrets.get(lower["awsaccesskeyid"])
        if secret is None:
            raise PolicyViolation(
                403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist."
            )
        digest = hmac.new(secret.encode(), policy_b64.encode(), hashlib.sha1).digest()
        if not hmac.compare_digest(base64.b64encode(digest).decode(), lower.get("signature", "")):
            raise PolicyViolation(
                403, "SignatureDoesNotMatch", "The request signature we calculated does not match."
            )
        return
    parts = lower.get("x-amz-credential", "").split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise PolicyViolation(400, "InvalidArgument", "x-amz-credential is malformed.")
    access_key, date, region, service, _ = parts
    secret = secrets.get(access_key)
    if secret is None:
        raise PolicyViolation(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist.")
    expected = hmac.new(
        _signing_key(secret, date, region, service), policy_b64.encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, lower.get("x-amz-signature", "")):
        raise PolicyViolation(
            403, "SignatureDoesNotMatch", "The request signature we calculated does not match."
        )


def check_policy(
    bucket: str, fields: dict[str, str], file_size: int, secrets: dict[str, str], now: datetime | None = None
) -> None:
    """Raise PolicyViolation unless the upload satisfies its policy (as S3 would judge it)."""
    lower = {k.lower(): v for k, v in fields.items()}
    policy_b64 = lower.get("policy")
    if policy_b64 is None:
        raise PolicyViolation(403, "AccessDenied", "Bucket POST must contain a field named 'policy'.")
    _check_signature(lower, policy_b64, secrets)
    try:
        policy = json.loads(base64.b64decode(policy_b64, validate=True))
        expiration = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
        conditions = policy["conditions"]
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
        raise PolicyViolation(400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON.") from None
    if (now or datetime.now(UTC)) > expiration:
        raise PolicyViolation(403, "AccessDenied", "Invalid according to Policy: Policy expired.")

    values = {**lower, "bucket": bucket}
    covered: set[str] = set()
    for condition in conditions:
        covered |= _check_condition(condition, values, file_size)
    for name in lower:
        if name not in covered and name not in _EXEMPT and not name.startswith("x-ignore-"):
            raise PolicyViolation(
                403, "AccessDenied", f"Invalid according to Policy: Extra input fields: {name}"
            )


def _check_condition(condition: Any, values: dict[str, str], file_size: int) -> set[str]:
    """Raise PolicyViolation unless the form's `values` meet one policy condition; return the
    (lower-case) field names it covers."""
    if isinstance(condition, dict):
        for name, wanted in condition.items():
            if values.get(name.lower()) != wanted:
                _failed(condition)
        return {name.lower() for name in condition}
    if not (isinstance(condition, list) and len(condition) == 3):
        raise PolicyViolation(400, "InvalidPolicyDocument", "Invalid Policy: Invalid condition.")
    op = str(condition[0]).lower()
    if op == "content-length-range":
        _check_size(int(condition[1]), int(condition[2]), file_size)
        return set()
    name = str(condition[1]).lstrip("$").lower()
    actual = values.get(name)
    if (op == "eq" and actual != condition[2]) or (
        op == "starts-with" and (actual is None or not actual.startswith(str(condition[2])))
    ):
        _failed(condition)
    if op not in ("eq", "starts-with"):
        _failed(condition)
    return {name}


def _check_size(low: int, high: int, file_size: int) -> None:
    if file_size > high:
        raise PolicyViolation(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
    if file_size < low:
        raise PolicyViolation(
            400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size"
        )


def _failed(condition: Any) -> None:
    raise PolicyViolation(
        403, "AccessDenied", f"Invalid according to Policy: Policy Condition failed: {json.dumps(condition)}"
    )


def bucket_cors_headers(bucket: str, origin: str) -> list[tuple[str, str]]:
    """The CORS headers S3 adds to a response for `origin` under the bucket's CORS rules.

    moto answers the preflight (OPTIONS) from the rules but sends no CORS headers on the form POST
    itself, so a browser would refuse to read S3's answer; S3 sends them on that response too,
    errors included (docs.aws.amazon.com/AmazonS3/latest/userguide/cors.html)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.exceptions import MissingBucket
    from moto.s3.models import s3_backends
    from moto.s3.utils import cors_matches_origin

    try:
        rules = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_bucket(bucket).cors
    except MissingBucket:
        return []
    for rule in rules:
        methods = rule.allowed_methods or []
        if "POST" in methods and cors_matches_origin(origin, rule.allowed_origins or []):
            headers = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
            if rule.exposed_headers:
                headers.append(("Access-Control-Expose-Headers", ", ".join(rule.exposed_headers)))
            return headers
    return []


def enforce_post_policy(app: WsgiApp, secrets: dict[str, str]) -> WsgiApp:
    """Wrap moto's WSGI app so that browser-based POST uploads are checked against their policy
    (and answered with the bucket's CORS headers, as S3 does)."""

    def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        is_form_post = (
            environ.get("REQUEST_METHOD") == "POST"
            and environ.get("CONTENT_TYPE", "").startswith("multipart/form-data")
            and path.strip("/").count("/") == 0
            and path.strip("/") != ""
        )
        if not is_form_post:
            return app(environ, start_response)
        origin = environ.get("HTTP_ORIGIN")
        if origin:
            cors = bucket_cors_headers(path.strip("/"), origin)
            plain_start = start_response

            def with_cors(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
                return plain_start(status, [*headers, *cors], *exc)

            start_response = with_cors
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        probe = {**environ, "wsgi.input": io.BytesIO(body)}
        _, form, files = parse_form_data(probe)
        environ["wsgi.input"] = io.BytesIO(body)
        if "policy" not in {k.lower() for k in form}:
            return app(environ, start_response)
        upload = files.get("file")
        size = len(upload.read()) if upload is not None else 0
        try:
            check_policy(path.strip("/"), {k: form[k] for k in form}, size, secrets)
        except PolicyViolation as exc:
            xml = (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{exc.code}</Code>'
                f"<Message>{escape(exc.message)}</Message></Error>"
            ).encode()
            start_response(
                f"{exc.status} {'Forbidden' if exc.status == 403 else 'Bad Request'}",
                [("Content-Type", "application/xml"), ("Content-Length", str(len(xml)))],
            )
            return [xml]
        fields = {k.lower(): form[k] for k in form}
        if "tagging" not in fields:
            return app(environ, start_response)
        status: list[str] = []

        def record(code: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            status.append(code)
            return start_response(code, headers, *exc)

        body_out = list(app(environ, record))
        if status and status[0].startswith("2"):
            _tag_posted_object(path.strip("/"), fields["key"], fields["tagging"])
        return body_out

    return middleware


def _tag_posted_object(bucket: str, key: str, tagging: str) -> None:
    """S3 stores a POST's `tagging` field as the object's tags; moto's POST ignores it, so the
    pending marker (keys.PENDING_TAGGING) is set here, after the policy has admitted it."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    # The policy has already required this exact value: `<Tag><Key>k</Key><Value>v</Value></Tag>`s.
    tags = dict(re.findall(r"<Tag><Key>([^<]*)</Key><Value>([^<]*)</Value></Tag>", tagging))
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    stored = backend.get_object(bucket, key)
    if stored is not None:
        backend.put_object_tagging(stored, tags)
