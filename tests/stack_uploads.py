"""Uploads through a running stack, as a client makes them: `createUpload`, then the presigned POST."""

from __future__ import annotations

from synapscribe.contract import UploadUrl
from synapscribe_ops.smoke.client import StackClient


async def upload_file(
    client: StackClient, data: bytes, filename: str, content_type: str = "audio/mpeg", kind: str = "lecture"
) -> UploadUrl:
    """Upload `data` (a `lecture` or a `query`); the `uploadUrl` the stack answered (its
    `uploadId` is the lecture's or query's id, its `key` a query's `queryKey`)."""
    got = await client.request(
        {
            "action": "createUpload",
            "kind": kind,
            "filename": filename,
            "contentType": content_type,
            "sizeBytes": len(data),
        },
        "uploadUrl",
    )
    assert isinstance(got.message, UploadUrl), got.raw
    response = await client.upload(got.message, data, filename, content_type)
    assert response.status_code in (200, 201, 204), response.text
    return got.message
