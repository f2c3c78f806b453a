"""vLLM's error responses: `{"error": {"message", "type", "param", "code"}}`.

Current vLLM (the pinned line) nests the fields under "error" like OpenAI; the openai client reads
both this and the older flat shape into `APIStatusError.body` the same way.
"""

from __future__ import annotations

from typing import Any


class StandinError(Exception):
    """A request the stand-in refuses, as vLLM would."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        err_type: str = "BadRequestError",
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.err_type = err_type
        self.param = param

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.status, self.err_type, self.param)


def error_body(message: str, status: int, err_type: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": err_type, "param": param, "code": status}}


def validation_error(message: str, param: str, value: object = None) -> StandinError:
    """A refusal worded like vLLM's VLLMValidationError: the parameter (and value) it names are
    appended to the message, and the parameter is the error's `param`."""
    extras = [f"parameter={param}"] + ([f"value={value}"] if value is not None else [])
    return StandinError(f"{message} ({', '.join(extras)})", param=param)
