"""Why a lecture cannot serve as context: its recording or transcript is unavailable, its
transcript does not fit or stays cut short, or less of it is audio than its duration says."""

from __future__ import annotations

from synapscribe.contract import ContractError, ErrorCode


class LectureUnavailableError(Exception):
    """The lecture's recording or transcript is missing or unreadable (the message says which)."""


class TranscriptTooLongError(Exception):
    """The lecture's transcript, counted by the model's tokenizer, does not fit the context."""


class TranscriptCutShortError(Exception):
    """A part of the lecture stayed cut short at max_tokens even when split (the message says where)."""


class LectureIncompleteError(ContractError):
    """Less of the recording could be read as audio than its measured duration: serving it would
    silently drop the rest, so the lecture is rejected instead (the message says why)."""

    def __init__(self, lecture_id: str, detail: str) -> None:
        super().__init__(ErrorCode.UNSUPPORTED_MEDIA, f"lecture {lecture_id} cannot be used: {detail}")
        self.detail = detail
