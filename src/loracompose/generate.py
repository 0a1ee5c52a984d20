"""Generation with a composition: templates and JSONL records (prompt sets: `loracompose.prompts`).

One call = prompts × seeds × samples continuations of one composition
{module: weight} under one method. Every record carries what is needed to
reproduce and evaluate it: prompt, text, seed, sample index, composition,
sampling settings, template, base model, package version.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from loracompose import __version__
from loracompose.compose.bank import ModuleBank
from loracompose.compose.methods import BASE_MEMBER, get_method  # noqa: F401  (BASE_MEMBER: its home is compose)
from loracompose.compose.plan import fused_for, plan_composition
from loracompose.compose.weight_methods import MergeOptions
from loracompose.decoding import SamplingConfig, row_seed, sample
from loracompose.errors import LoraComposeError
from loracompose.models import linear_layers
from loracompose.prompts import PPLM_PROMPTS, load_prompts  # noqa: F401  (re-exported; home: prompts)

INSTRUCT_TEMPLATE = 'Write a fluent English story starting with "{prompt}" with {targets}.'


def describe_targets(bank: ModuleBank | None, composition: dict[str, float]) -> str:
    """'a positive sentiment and a sport topic' from the modules' metadata (positive weights only)."""
    parts = []
    for name, weight in composition.items():
        if bank is None or name == BASE_MEMBER or weight <= 0 or name not in bank.names:
            continue
        info = bank[name].info
        parts.append(f"a {info.label or name} {info.attribute or 'style'}")
    return " and ".join(parts) or "a natural style"


def render_prompt(prompt: str, template: str, tokenizer, targets: str) -> str:
    """plain: the prompt itself; instruct: the model's chat template around INSTRUCT_TEMPLATE,
    with the answer starting with the prompt; any other string: a format with {prompt} and {targets}."""
    if template == "plain":
        return prompt
    if template == "instruct":
        if not getattr(tokenizer, "chat_template", None):
            raise LoraComposeError("template 'instruct' needs a tokenizer with a chat template; use 'plain'")
        message = INSTRUCT_TEMPLATE.format(prompt=prompt, targets=targets)
        chat = tokenizer.apply_chat_template([{"role": "user", "content": message}], tokenize=False,
                                             add_generation_prompt=True)
        return chat + prompt
    if "{prompt}" not in template:
        raise LoraComposeError(f"template '{template}' must be 'plain', 'instruct' or contain '{{prompt}}'")
    return template.format(prompt=prompt, targets=targets)


@dataclass(frozen=True)
class Job:
    """One continuation to produce."""

    prompt: str
    seed: int
    sample: int


class Steerer:
    """A base model with a module bank, ready to generate under any composition and method."""

    def __init__(self, model, tokenizer, bank: ModuleBank | None, model_spec: str = ""):
        self.model, self.tokenizer, self.model_spec = model, tokenizer, model_spec
        self.bank = bank or ModuleBank.from_loaded([])
        self.layer_order = list(linear_layers(model))

    def generate(self, prompts: list[str], composition: dict[str, float], method: str = "output-sum",
                 seeds: list[int] = (0,), samples: int = 1, sampling: SamplingConfig = SamplingConfig(),
                 template: str = "plain", options: MergeOptions = MergeOptions(), progress: bool = False) -> list[dict]:
        if samples < 1 or not seeds or not prompts:
            raise LoraComposeError("generation needs at least one prompt, one seed and --samples >= 1")
        plan = plan_composition(composition, method)
        for name in plan.modules:
            self.bank.index(name)  # unknown names fail before any work
        targets = describe_targets(self.bank, composition)
        jobs = [Job(p, s, i) for s in seeds for p in prompts for i in range(samples)]
        per_batch = max(1, sampling.batch_size // len(plan.coefficients or (1,)))
        records = []
        composed = fused_for(plan, self.model, self.bank, self.layer_order, options)
        try:
            rows, lambdas = plan.rows(composed)
            # output and weight level: rows are each sequence's weights (1, N); decoding: member rows (K, N)
            weights, members = (rows, None) if lambdas is None else (None, rows)
            coefficients = None if lambdas is None else lambdas[None, :]
            batches = range(0, len(jobs), per_batch)
            if progress:
                from loracompose.progress import progress_bar

                batches = progress_bar(batches, desc=f"generating ({method})", unit="batch")
            for start in batches:
                chunk = jobs[start : start + per_batch]
                rendered = [render_prompt(j.prompt, template, self.tokenizer, targets) for j in chunk]
                texts = sample(composed, self.tokenizer, rendered, [row_seed(j.seed, j.sample) for j in chunk],
                               sampling,
                               weights=None if weights is None else weights.expand(len(chunk), -1),
                               coefficients=None if coefficients is None else coefficients.expand(len(chunk), -1),
                               members=members)
                records += [self._record(j, t, composition, method, sampling, template, options)
                            for j, t in zip(chunk, texts)]
        finally:
            composed.detach()
        return records

    def _record(self, job: Job, text: str, composition, method, sampling, template, options) -> dict:
        modules = {n: (self.bank[n].info.metadata.get("label"), self.bank[n].info.metadata.get("attribute"))
                   for n in composition if n != BASE_MEMBER}
        return {
            "prompt": job.prompt, "text": text, "seed": job.seed, "sample": job.sample,
            "composition": {"method": method, "weights": dict(composition),
                            "targets": {n: {"label": lab, "attribute": att} for n, (lab, att) in modules.items()},
                            **({"options": asdict(options)} if get_method(method).level == "weight" else {})},
            "generation": {**asdict(sampling), "template": template},
            "model": self.model_spec, "loracompose_version": __version__,
        }
