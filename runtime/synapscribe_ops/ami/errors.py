"""The exit statuses of `synapscribe ami` (listed in its --help and the operator's guide)."""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    #: A bug: a traceback, no verdict.
    CRASH = 1
    #: A bad flag or argument.
    USAGE = 2
    #: AWS refused or could not answer (credentials, access, throttling, a missing resource).
    AWS = 3
    #: Refused: the image has not passed the step before (promote out of order), or nothing to
    #: roll back to. Nothing was changed.
    REFUSED = 4
    #: Packer (scripts/bake-ami) failed: no image.
    BAKE_FAILED = 5
    #: The verify instance never became ready, a host test failed, or the canned question was
    #: answered wrongly. The instance was terminated; the image is tagged verify-failed.
    VERIFY_FAILED = 6
    #: The instance refresh failed (an alarm fired, instances did not become healthy) or the
    #: smoke test failed: the channel was rolled back to its previous image and refreshed again.
    ROLLOUT_FAILED = 7
    #: As ROLLOUT_FAILED, and the rollback's own refresh failed too: look at the group now.
    ROLLBACK_FAILED = 8


DESCRIPTIONS = {
    Exit.OK: "the step did its work (or had done it before)",
    Exit.CRASH: "a bug in the tool (a traceback)",
    Exit.USAGE: "a bad flag or argument; nothing was done",
    Exit.AWS: "AWS refused or could not answer (credentials, access, a missing group or image)",
    Exit.REFUSED: "refused: the image has not passed the step before, or nothing to roll back to",
    Exit.BAKE_FAILED: "Packer failed; no image",
    Exit.VERIFY_FAILED: "the verify host was not ready, failed a host test or answered wrongly (terminated)",
    Exit.ROLLOUT_FAILED: "the refresh or the smoke test failed; the channel was rolled back and refreshed",
    Exit.ROLLBACK_FAILED: "the rollout failed and so did the rollback's refresh: check the group",
}


class PipelineError(Exception):
    """A step stops with `exit` and a message saying what happened and what to do."""

    def __init__(self, exit: Exit, message: str) -> None:
        super().__init__(message)
        self.exit = exit
