"""`loracompose run SPEC --plan`: what a spec's grid costs, and how much of it a workdir already holds.

Nothing runs. Per model and unit kind it counts the units, those whose output is already in the
workdir's cache, and their work in tokens:

    train    steps × batch × sequence length   (tokens through forward and backward)
    compose  –                                  (a merge is seconds; learn-weights is not counted)
    cell     prompts × samples × new tokens × forwards per token   (generated tokens)

where a logit-sum cell runs one forward per member module and every other cell one (output-sum
of N modules is one forward of the fused model). These are the numbers to multiply by a
machine's measured cost per token (docs/study/README.md does so for a GPU).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loracompose.experiments.plan import Plan, unit_done


@dataclass
class WorkloadRow:
    model: str
    kind: str  # train, compose or cell
    units: int = 0
    done: int = 0
    tokens: int = 0
    tokens_left: int = 0
    continuations: int = 0  # cells only
    continuations_left: int = 0


def unit_tokens(unit) -> tuple[int, int]:
    """(tokens, continuations) of one unit: see the module docstring."""
    if unit.kind == "train":
        return unit.train.steps * unit.train.batch_size * unit.train.seq_len, 0
    if unit.kind == "compose":
        return 0, 0
    continuations = len(unit.prompts) * unit.samples
    forwards = len(unit.modules) if unit.method == "logit-sum" else 1
    return continuations * unit.generate.sampling.max_new_tokens * forwards, continuations


def workload(plan: Plan, workdir: str | Path) -> list[WorkloadRow]:
    """One row per (model, kind): models in the plan's order, kinds as train, compose, cell."""
    rows: dict[tuple[str, str], WorkloadRow] = {}
    for unit in plan.units:
        row = rows.setdefault((unit.model, unit.kind), WorkloadRow(unit.model, unit.kind))
        tokens, continuations = unit_tokens(unit)
        done = unit_done(unit, Path(workdir))
        row.units += 1
        row.done += done
        row.tokens += tokens
        row.continuations += continuations
        if not done:
            row.tokens_left += tokens
            row.continuations_left += continuations
    models = list(dict.fromkeys(unit.model for unit in plan.units))
    kinds = ("train", "compose", "cell")
    return sorted(rows.values(), key=lambda r: (models.index(r.model), kinds.index(r.kind)))


def format_workload(rows: list[WorkloadRow]) -> str:
    """A plain-text table of the rows, with a total of tokens per kind."""
    header = ("model", "kind", "units", "done", "tokens", "tokens left", "continuations", "left")
    lines = [header]
    for r in rows:
        lines.append((r.model, r.kind, str(r.units), str(r.done), f"{r.tokens:,}", f"{r.tokens_left:,}",
                      f"{r.continuations:,}" if r.kind == "cell" else "", f"{r.continuations_left:,}"
                      if r.kind == "cell" else ""))
    for kind in ("train", "cell"):
        part = [r for r in rows if r.kind == kind]
        if part:
            lines.append(("all", kind, str(sum(r.units for r in part)), str(sum(r.done for r in part)),
                          f"{sum(r.tokens for r in part):,}", f"{sum(r.tokens_left for r in part):,}",
                          f"{sum(r.continuations for r in part):,}" if kind == "cell" else "",
                          f"{sum(r.continuations_left for r in part):,}" if kind == "cell" else ""))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(line, widths))).rstrip() for line in lines)
