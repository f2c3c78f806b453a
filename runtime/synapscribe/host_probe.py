"""The canned question, asked on a GPU host by `synapscribe ami verify` through SSM Run Command.

Runs on the host from the image's runtime environment (`python -m synapscribe.host_probe`), so it
exercises what the image ships: the served model through vLLM on loopback, with AgentCore's own
prompts (agentcore/prompts.py): the spoken question is transcribed as AgentCore transcribes
questions, then answered over the lecture's transcript as AgentCore answers. Prints one JSON
object, {"transcript": ..., "answer": ...}; the verify step judges it (word accuracy of the
transcript, the lecture's term named in the answer).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from synapscribe.agentcore import prompts
from synapscribe.platform import load_platform


def chat(client: httpx.Client, model: str, messages: list[dict[str, Any]], max_tokens: int) -> str:
    response = client.post(
        "/v1/chat/completions",
        json={
            "model": model,
            "messages": prompts.wire_messages(messages),
            "max_tokens": max_tokens,
            "temperature": 0,
        },
    )
    response.raise_for_status()
    return str(response.json()["choices"][0]["message"]["content"] or "").strip()


def ask(
    client: httpx.Client, model: str, lecture: str, audio: bytes, fmt: str, seconds: float
) -> dict[str, str]:
    b64 = base64.b64encode(audio).decode()
    transcript = chat(client, model, prompts.transcription_messages(b64, fmt, seconds), 128)
    lecture_message = prompts.lecture_transcript_message(
        [prompts.TranscriptSegment(0.0, 60.0, lecture.strip())]
    )
    messages = [*prompts.lecture_messages(lecture_message), prompts.question_message(text=transcript)]
    return {"transcript": transcript, "answer": chat(client, model, messages, 200)}


def main(argv: list[str] | None = None) -> int:
    platform = load_platform()
    parser = argparse.ArgumentParser(
        prog="python -m synapscribe.host_probe", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--lecture", type=Path, required=True, help="the lecture's text")
    parser.add_argument("--question", type=Path, required=True, help="the spoken question (audio file)")
    parser.add_argument("--format", default="mp3", choices=["mp3", "wav"])
    parser.add_argument("--seconds", type=float, required=True, help="the question's duration")
    parser.add_argument("--vllm-url", default=f"http://127.0.0.1:{platform.ports.vllm}")
    args = parser.parse_args(argv)
    key = os.environ.get("VLLM_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=args.vllm_url, timeout=120, headers=headers, trust_env=False) as client:
        result = ask(
            client,
            platform.model.served_name,
            args.lecture.read_text(encoding="utf-8"),
            args.question.read_bytes(),
            args.format,
            args.seconds,
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
