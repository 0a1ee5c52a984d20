"""OpenAI response bodies and server-sent-event chunks, for completions and chat.

    completion   {"object": "text_completion", "choices": [{"text", "index", "finish_reason"}], "usage"}
    chat         {"object": "chat.completion", "choices": [{"message": {"role", "content"}, ...}], "usage"}
    streamed     `data: {chunk}\\n\\n` per delta, a last chunk per choice with its finish_reason,
                 an optional usage chunk, then `data: [DONE]\\n\\n`

Extension: each body also carries `seed` (the run seed used, random when the
request gave none) and `composition` (what was applied).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING

from loracompose.serve.engine import shown

if TYPE_CHECKING:
    from loracompose.serve.scheduler import Job


def _finish(reason: str | None) -> str:
    return "stop" if reason == "stop" else "length"


class Responder:
    """Builds the bodies of one request: `chat` picks the chat shapes."""

    def __init__(self, chat: bool, model: str, composition: dict | None):
        self.chat, self.model, self.composition = chat, model, composition
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        self.created = int(time.time())

    def _head(self, obj: str, job: Job) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model,
                "seed": job.plan.seed, "composition": self.composition}

    def usage(self, job: Job) -> dict:
        completion = sum(len(s.tokens) for s in job.plan.sequences)
        return {"prompt_tokens": job.plan.prompt_tokens, "completion_tokens": completion,
                "total_tokens": job.plan.prompt_tokens + completion}

    def body(self, job: Job) -> dict:
        choices = []
        for index, (sequence, text) in enumerate(zip(job.plan.sequences, job.texts)):
            choice = {"index": index, "finish_reason": _finish(sequence.finish_reason), "logprobs": None}
            if self.chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            choices.append(choice)
        obj = "chat.completion" if self.chat else "text_completion"
        return {**self._head(obj, job), "choices": choices, "usage": self.usage(job)}

    def _chunk(self, job: Job, choices: list[dict], usage: dict | None = None) -> str:
        obj = "chat.completion.chunk" if self.chat else "text_completion"
        return f"data: {json.dumps({**self._head(obj, job), 'choices': choices, 'usage': usage})}\n\n"

    def _choice(self, index: int, text: str | None, finish: str | None, first: bool = False) -> dict:
        if self.chat:
            delta = {} if text is None else {"content": text}
            if first:
                delta["role"] = "assistant"
            return {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}
        return {"index": index, "text": text or "", "finish_reason": finish, "logprobs": None}

    def opening(self, job: Job) -> str:
        """Chat streams open with the assistant role (as OpenAI's do); completions send nothing."""
        if not self.chat:
            return ""
        return self._chunk(job, [self._choice(i, "", None, first=True) for i in range(len(job.plan.sequences))])

    def delta(self, job: Job, items: list[tuple[int, str]]) -> str:
        return self._chunk(job, [self._choice(index, text, None) for index, text in items])

    def closing(self, job: Job, include_usage: bool) -> str:
        chunks = self._chunk(job, [self._choice(i, None, _finish(s.finish_reason))
                                   for i, s in enumerate(job.plan.sequences)])
        if include_usage:
            chunks += self._chunk(job, [], self.usage(job))
        return chunks + "data: [DONE]\n\n"


MAX_MESSAGE = 2000  # characters of an error message (a list of known modules is the longest legitimate one)


def error_body(status: int, message: str, param: str | None = None) -> dict:
    kinds = {401: "authentication_error", 404: "not_found_error", 408: "timeout_error", 413: "invalid_request_error",
             429: "rate_limit_error"}
    kind = kinds.get(status, "invalid_request_error" if status < 500 else "server_error")
    # Every message and param is encodable and bounded, whatever a client put into it.
    param = None if param is None else shown(param, 200)
    return {"error": {"message": shown(message, MAX_MESSAGE), "type": kind, "param": param, "code": status}}


def sse_error(status: int, message: str) -> str:
    """An error after a stream has started (its status line is already sent): one event, then [DONE]."""
    return f"data: {json.dumps(error_body(status, message))}\n\ndata: [DONE]\n\n"
