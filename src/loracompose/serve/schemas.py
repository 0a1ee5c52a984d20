"""Request bodies of the OpenAI-compatible routes, plus the `composition` extension.

Strict types (a string is not a number) and no unknown fields: a field this
server does not implement is refused by name rather than silently ignored. The
OpenAI fields it does not implement are accepted only at their neutral values
(`presence_penalty: 0`, `logprobs: null`, ...), which some clients always send.
Limits that depend on the server's settings or model (max_tokens cap, weight
range, module names, context length) are checked in `engine.py`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from loracompose.compose.methods import METHODS, SERVED_METHODS
from loracompose.steer import DEFAULT_STRENGTH, STRATEGIES

# OpenAI fields accepted only when they ask for nothing: field → the neutral values.
_NEUTRAL = {"presence_penalty": (0, 0.0), "frequency_penalty": (0, 0.0), "logprobs": (False, 0),
            "top_logprobs": (0,), "echo": (False,), "best_of": (1,), "logit_bias": ({},), "suffix": ("",),
            "response_format": ({"type": "text"},), "tools": ([],), "tool_choice": ("none",)}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Composition(Strict):
    """{"modules": {name: weight}, "method": ...}; no modules (or no composition) = the base model."""

    modules: dict[str, float] = Field(default_factory=dict)
    method: str = "output-sum"

    @field_validator("method")
    @classmethod
    def _served_method(cls, method: str) -> str:
        if method not in SERVED_METHODS:
            kind = ("a weight-level merge, which the server does not run per request"
                    if method in METHODS else "not a composition method")
            shown = method.encode("utf-8", "backslashreplace").decode("utf-8")[:40]  # pydantic needs valid UTF-8
            raise ValueError(f"'{shown}' is {kind}; accepted: {', '.join(SERVED_METHODS)}")
        return method


class Steer(Strict):
    """{"targets": {attribute: value}, "strength": S or {attribute: S}, "strategy": ...}: steer by the
    modules' metadata instead of naming them (loracompose.steer resolves it to a composition)."""

    targets: dict[str, str]
    strength: float | dict[str, float] = DEFAULT_STRENGTH
    strategy: str = "contrast"

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, strategy: str) -> str:
        if strategy not in STRATEGIES:
            shown = strategy.encode("utf-8", "backslashreplace").decode("utf-8")[:40]
            raise ValueError(f"unknown strategy '{shown}'; accepted: {', '.join(STRATEGIES)}")
        return strategy


class StreamOptions(Strict):
    include_usage: bool = False


class Sampling(Strict):
    """Fields shared by both routes. Defaults follow the controlled-generation protocol
    (top-k 50, top-p 0.95, T=1); temperature 0 means greedy."""

    model: str
    max_tokens: int | None = None
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    top_k: int = Field(50, ge=0)  # extension (0 = off)
    n: int = Field(1, ge=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    composition: Composition | None = None  # extension
    steer: Steer | None = None  # extension: attribute=value targets instead of a composition
    # Accepted at neutral values only (see _NEUTRAL).
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: Any = None
    top_logprobs: int | None = None
    logit_bias: dict[str, float] | None = None
    response_format: dict | None = None
    tools: list | None = None
    tool_choice: Any = None

    @model_validator(mode="after")
    def _neutral_only(self):
        for name, neutral in _NEUTRAL.items():
            value = getattr(self, name, None)
            if value is not None and value not in neutral:
                raise ValueError(f"{name}={repr(value)[:40]} is not supported by this server; leave it out")
        if isinstance(self.stop, list) and (len(self.stop) > 4 or not all(self.stop)):
            raise ValueError("stop takes at most 4 non-empty strings")
        if self.stop == "":
            raise ValueError("stop must not be an empty string")
        if self.steer is not None and self.composition is not None:
            raise ValueError("give either steer (attribute targets) or composition (module weights), not both")
        return self

    @property
    def stops(self) -> list[str]:
        return [] if self.stop is None else [self.stop] if isinstance(self.stop, str) else list(self.stop)


class CompletionRequest(Sampling):
    prompt: str | list[str]
    echo: bool | None = None
    best_of: int | None = None
    suffix: str | None = None

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class TextPart(Strict):
    type: Literal["text"]
    text: str


class Message(Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ChatRequest(Sampling):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = None  # the newer name of max_tokens

    @model_validator(mode="after")
    def _one_max(self):
        if self.max_tokens is not None and self.max_completion_tokens is not None:
            raise ValueError("give max_tokens or max_completion_tokens, not both")
        if self.max_completion_tokens is not None:
            self.max_tokens = self.max_completion_tokens
        return self


class JudgeRequest(Strict):
    text: str = Field(max_length=20_000)


class ModuleDirectory(Strict):
    """POST /admin/modules: a module directory directly under the server's --modules directory, by name."""

    directory: str = Field(min_length=1, max_length=255)
