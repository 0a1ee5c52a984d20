"""Server settings: one dataclass, one comment per field."""

from __future__ import annotations

from dataclasses import dataclass

from loracompose.errors import LoraComposeError


@dataclass(frozen=True)
class ServeSettings:
    host: str = "127.0.0.1"  # loopback unless told otherwise
    port: int = 8000
    api_key: str | None = None  # bearer token required on every API route (not /health, not the static page)
    admin_key: str | None = None  # bearer token of the /admin routes (module hot-loading); default: api_key
    max_batch_rows: int = 16  # forward rows per batch: a sequence takes 1, a logit-sum sequence one per member
    max_queue: int = 64  # jobs waiting for a batch; beyond it, 429 with Retry-After
    batch_window_s: float = 0.01  # once a job arrives, wait this long for others to share its batch
    request_timeout_s: float = 120.0  # deadline from arrival; past it a job is cancelled (408)
    max_tokens_cap: int = 256  # largest max_tokens a request may ask for
    default_max_tokens: int = 64  # when a request gives none
    max_prompt_tokens: int = 1024  # longest prompt (also bounded by the model's context)
    max_n: int = 8  # choices per request (n × prompts)
    min_weight: float = -2.0  # accepted range of a composition weight
    max_weight: float = 2.0
    max_body_bytes: int = 1_000_000  # larger request bodies are refused (413)
    judges: str = "auto"  # playground scores: "auto" (modules' attributes), "none", or a comma list
    allowed_hosts: tuple[str, ...] = ()  # Host names served without an API key besides loopback and `host`

    def __post_init__(self):
        positive = ("max_batch_rows", "max_queue", "max_tokens_cap", "default_max_tokens", "max_prompt_tokens",
                    "max_n", "max_body_bytes")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise LoraComposeError(f"serve setting {name}={value!r} must be a whole number >= 1")
        if self.default_max_tokens > self.max_tokens_cap:
            raise LoraComposeError(f"default max tokens {self.default_max_tokens} is above the cap "
                                   f"{self.max_tokens_cap}")
        if not self.request_timeout_s > 0 or not self.batch_window_s >= 0:
            raise LoraComposeError("request timeout must be > 0 s and the batch window >= 0 s")
        if not self.min_weight < self.max_weight:
            raise LoraComposeError(f"weight range [{self.min_weight}, {self.max_weight}] is empty")
        if not 0 <= self.port <= 65535:
            raise LoraComposeError(f"port {self.port} is not in 0..65535")
