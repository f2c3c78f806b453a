"""The lecture validation trigger: S3 puts an event for each new `lectures/` object on an SQS
queue (in moto, configured by local.aws.prepare); this poller hands each event to the validation
Lambda handler, as Lambda's S3 trigger does, with Lambda's asynchronous retries (two)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from synapscribe_local.aws import s3_event_from_sqs_body
from synapscribe_local.gateway import LambdaContext

log = logging.getLogger("synapscribe_local.trigger")

#: Lambda retries a failed asynchronous invocation twice.
MAX_ATTEMPTS = 3


class UploadTrigger:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: Callable[[dict[str, Any], Any], Any],
        retry_after_seconds: int = 2,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.handler = handler
        self.retry_after_seconds = retry_after_seconds
        self.invocations = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="upload-trigger", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once(wait_seconds=1)
            except Exception:
                log.exception("polling the upload queue failed")
                self._stop.wait(1)

    def poll_once(self, wait_seconds: int = 0) -> int:
        """Handle what is on the queue now; returns the number of messages taken."""
        reply = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["ApproximateReceiveCount"],
        )
        messages = reply.get("Messages", [])
        for message in messages:
            self._handle(message)
        return len(messages)

    def _handle(self, message: dict[str, Any]) -> None:
        attempt = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        event = s3_event_from_sqs_body(message["Body"])
        if event is not None:
            self.invocations += 1
            try:
                self.handler(event, LambdaContext(function_name="validate-lecture", timeout_seconds=60))
            except Exception:
                self.failures += 1
                log.exception("validation handler failed (attempt %d of %d)", attempt, MAX_ATTEMPTS)
                if attempt < MAX_ATTEMPTS:
                    self.sqs.change_message_visibility(
                        QueueUrl=self.queue_url,
                        ReceiptHandle=message["ReceiptHandle"],
                        VisibilityTimeout=self.retry_after_seconds,
                    )
                    return
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
