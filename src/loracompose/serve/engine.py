"""The served model: a base with every module of one directory in one fused `ComposedModel`.

A request becomes one `Sequence` per (prompt, choice). With the N modules of the
directory in the bank (fixed order), a sequence's member rows are

    output-sum    rows = (1, N) weights w (zeros for modules not named); None for the bare base
    output-mean   the same with w / Σ w
    logit-sum     rows = (K, N): row 0 the base (all zeros) if `base` is weighted, then one
                  one-hot row per named module; coefficients λ (K,); members with λ = 0 dropped

so any mix of requests shares one batch (`decoding.Decoder` groups what must be
scored together). Module names are looked up in the bank loaded at start-up from
the configured directory; a client never names a path.
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

from loracompose.compose.bank import ModuleBank, discover_modules
from loracompose.compose.fused import ComposedModel
from loracompose.compose.methods import BASE_MEMBER, SERVED_METHODS
from loracompose.compose.plan import CompositionPlan, plan_composition
from loracompose.decoding import SamplingConfig, Sequence, row_seed
from loracompose.errors import LoraComposeError
from loracompose.models import load_base
from loracompose.serve.schemas import ChatRequest, CompletionRequest, Composition, Sampling
from loracompose.serve.settings import ServeSettings
from loracompose.steer import STRATEGIES, STRENGTH_RANGE, attribute_labels, resolve_steering

log = logging.getLogger(__name__)


def shown(value, limit: int = 60) -> str:
    """A client-supplied string as an error message may echo it: valid UTF-8 (a lone surrogate
    becomes `\\ud800`) and at most `limit` characters (then `…`)."""
    text = str(value).encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ApiError(Exception):
    """A client error with its HTTP status; the message names the problem and what is accepted."""

    def __init__(self, status: int, message: str, param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.headers = status, message, param, headers or {}


@dataclass
class Plan:
    """A validated request: its sequences and how to answer."""

    sequences: list[Sequence]
    stops: list[str]
    seed: int
    prompt_tokens: int
    composition: dict | None  # {"modules", "method"} applied; None for the bare base
    columns: tuple[str, ...] = ()  # the bank's module names when planned: the columns of the sequences' rows
    rows: int = field(init=False)

    def __post_init__(self):
        self.rows = sum(s.members for s in self.sequences)


class Engine:
    def __init__(self, model, tokenizer, model_name: str, modules_dir: str | Path | None, settings: ServeSettings,
                 fingerprint: dict | None = None):
        self.model, self.tokenizer, self.model_name, self.settings = model, tokenizer, model_name, settings
        # A bad module is refused with its message and the others are served (GET /health lists them).
        self.refused: dict[str, str] = {}
        self.modules_dir, self.fingerprint = (Path(modules_dir) if modules_dir else None), fingerprint
        # Held while a request's rows are planned and while the bank changes (serve/modules.py): a plan's
        # columns are the bank it was planned against. `draining`: removed modules that in-flight requests
        # still use; new requests naming them get 404, and they leave the fused layers once unused.
        self.modules_lock = threading.RLock()
        self.draining: set[str] = set()
        paths = discover_modules(modules_dir, self.refused) if modules_dir else {}
        self.bank = ModuleBank(model, paths, fingerprint, self.refused)
        for name, message in self.refused.items():
            log.warning("not serving %s: %s", name, message)
        self.composed = ComposedModel(model, self.bank)
        self.context = int(getattr(model.config, "max_position_embeddings", 0) or 2048)
        self.tokenizer_lock = threading.Lock()  # a fast tokenizer is not safe across threads
        # The most characters one token can cover: a prompt longer than (tokens that fit) × this is
        # refused before tokenising it (a 1 MB prompt takes the tokenizer a while).
        self.chars_per_token = max((len(t) for t in tokenizer.get_vocab()), default=1) + 1

    @classmethod
    def load(cls, model_spec: str, modules_dir: str | Path | None, settings: ServeSettings,
             quantize: str | None = None) -> "Engine":
        base = load_base(model_spec, quantize=quantize)
        name = Path(model_spec).name if Path(model_spec).exists() else model_spec
        return cls(base.model, base.tokenizer, name, modules_dir, settings, base.fingerprint)

    # -- listing -----------------------------------------------------------------------------------
    def describe(self) -> list[dict]:
        """The base and each module, for GET /v1/models."""
        s = self.settings
        entries = [{"id": self.model_name, "object": "model", "created": 0, "owned_by": "loracompose",
                    "kind": "base", "context": self.context,
                    "composition": {"methods": list(SERVED_METHODS),
                                    "weight_range": [s.min_weight, s.max_weight], "base_member": BASE_MEMBER},
                    "steer": {"attributes": self.steerable(), "strategies": list(STRATEGIES),
                              "strength_range": list(STRENGTH_RANGE)}}]
        for module in self.served():
            info, meta = module.info, module.info.metadata
            entries.append({"id": module.name, "object": "model", "created": 0, "owned_by": "loracompose",
                            "kind": "module", "attribute": info.attribute, "label": info.label,
                            "datasets": [n for n in (d.get("name") if isinstance(d, dict) else d
                                                     for d in meta.get("datasets", [])) if isinstance(n, str)],
                            "rank": info.rank, "alpha": info.alpha})
        return entries

    def steerable(self) -> dict[str, list[str]]:
        """attribute → the values this server's modules can steer toward."""
        table = attribute_labels({m.name: m.info for m in self.served()})
        return {attribute: sorted(labels) for attribute, labels in sorted(table.items())}

    def served(self) -> list:
        """The modules requests may name: the bank less the ones being removed."""
        return [m for m in self.bank.modules if m.name not in self.draining]

    # -- requests → sequences ----------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        with self.tokenizer_lock:
            return self.tokenizer(text)["input_ids"]

    def _check_length(self, characters: int, tokens: int, param: str) -> None:
        most = tokens * self.chars_per_token
        if characters > most:
            raise ApiError(400, f"the {param} is {characters} characters; at most {most} are accepted (the {tokens} "
                                f"prompt tokens that fit, at most {self.chars_per_token} characters each)", param)

    def chat_prompt(self, request: ChatRequest) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise ApiError(400, f"model '{self.model_name}' has no chat template; use /v1/completions", "messages")
        self._check_length(sum(len(m.text()) for m in request.messages), self.settings.max_prompt_tokens, "messages")
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                    for m in request.messages]
        with self.tokenizer_lock:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def plan(self, request: CompletionRequest | ChatRequest) -> Plan:
        prompts = request.prompts if isinstance(request, CompletionRequest) else [self.chat_prompt(request)]
        if not prompts:
            raise ApiError(400, "prompt: give a string or a non-empty list of strings", "prompt")
        s = self.settings
        with self.modules_lock:  # the rows' columns are the bank's modules now (it may change at run time)
            composition, planned = self._composition(request)
            removed = sorted(set(composition.modules) & self.draining)
            if removed:
                names = ", ".join(m.name for m in self.served()) or "none"
                raise ApiError(404, f"unknown module '{shown(removed[0])}' (it was removed); known modules: {names}",
                               "composition.modules")
            rows, coefficients = planned.rows(self.composed)  # (K, N) over the bank now, λ (K,); None: the base
            columns = tuple(self.composed.bank.names)
        max_tokens = s.default_max_tokens if request.max_tokens is None else request.max_tokens
        if not 1 <= max_tokens <= s.max_tokens_cap:
            raise ApiError(400, f"max_tokens {max_tokens} is out of range; accepted: 1 to {s.max_tokens_cap}",
                           "max_tokens")
        if request.n * len(prompts) > s.max_n:
            raise ApiError(400, f"n × prompts = {request.n * len(prompts)} choices; at most {s.max_n} per request",
                           "n")
        config = SamplingConfig(max_new_tokens=max_tokens, temperature=request.temperature or 1.0,
                                # temperature 0 = greedy: only the most likely token survives top-k 1
                                top_k=1 if request.temperature == 0 else request.top_k, top_p=request.top_p)
        seed = secrets.randbits(62) if request.seed is None else request.seed
        sequences, prompt_tokens = [], 0
        for prompt in prompts:
            try:
                prompt.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ApiError(400, f"the prompt is not valid Unicode text ({exc.reason} at character {exc.start})",
                               "prompt") from None
            limit = min(s.max_prompt_tokens, self.context - max_tokens)
            self._check_length(len(prompt), max(limit, 1), "prompt")
            ids = self.encode(prompt)
            if not ids:
                raise ApiError(400, "the prompt is empty (0 tokens); give some text", "prompt")
            if len(ids) > limit:
                raise ApiError(400, f"the prompt is {len(ids)} tokens; with max_tokens {max_tokens} at most {limit} "
                                    f"fit (context {self.context}, prompt cap {s.max_prompt_tokens})", "prompt")
            prompt_tokens += len(ids)
            # Choice i of a prompt uses the generator seed of sample i under `seed`, as `loracompose generate` does.
            sequences += [Sequence(ids, row_seed(seed, i), config, rows, coefficients) for i in range(request.n)]
        applied = composition.model_dump() if composition.modules else None
        plan = Plan(sequences, request.stops, seed, prompt_tokens, applied, columns)
        if plan.rows > s.max_batch_rows:
            raise ApiError(400, f"this request needs {plan.rows} batch rows (choices × logit-sum members); the "
                                f"server's batch holds {s.max_batch_rows}", "n")
        return plan

    def _composition(self, request: Sampling) -> tuple[Composition, CompositionPlan]:
        """The request's composition and its plan; a module named as `model` means that module at weight 1."""
        known = [self.model_name] + self.bank.names
        if request.model not in known:
            raise ApiError(404, f"unknown model '{shown(request.model)}'; known: {', '.join(known)}", "model")
        if request.model != self.model_name:
            if request.composition is not None:
                raise ApiError(400, f"model '{request.model}' is a module; give either a module as the model or a "
                                    f"composition with model '{self.model_name}', not both", "composition")
            composition = Composition(modules={request.model: 1.0})
            return composition, plan_composition(composition.modules, composition.method)
        composition = self._steered(request.steer) if request.steer is not None else \
            request.composition or Composition()
        s = self.settings
        for name, weight in composition.modules.items():
            if name == BASE_MEMBER and composition.method == "logit-sum":
                pass
            elif name not in self.bank.names:
                extra = f" (and '{BASE_MEMBER}' for logit-sum)" if name == BASE_MEMBER else ""
                raise ApiError(404, f"unknown module '{shown(name)}'; known modules: "
                                    f"{', '.join(self.bank.names) or 'none'}"
                                    f"{extra}", "composition.modules")
            if not s.min_weight <= weight <= s.max_weight:
                raise ApiError(400, f"weight {weight} of '{shown(name)}' is out of range; accepted: {s.min_weight} to "
                                    f"{s.max_weight}", "composition.modules")
        try:  # the planner's checks (a mean of weights summing to 0, logit-sum with no member, …)
            return composition, plan_composition(composition.modules, composition.method)
        except LoraComposeError as exc:
            raise ApiError(400, str(exc), "composition.modules") from None

    def _steered(self, steer) -> Composition:
        """A `steer` request as the composition `loracompose.steer` resolves it to (same as `generate --steer`)."""
        try:
            steering = resolve_steering({m.name: m.info for m in self.served()}, steer.targets, steer.strength,
                                        steer.strategy)
        except LoraComposeError as exc:
            raise ApiError(400, shown(str(exc), 300), "steer") from None
        return Composition(modules=steering.composition, method=steering.method)
