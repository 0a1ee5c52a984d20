"""The side-by-side run: generate every condition, score every text, write the tables and the plot.

Writes under `out`: generations/<prompt set>/<condition>[-<direction>].jsonl, scores/…json,
versus.json (every number), versus.md (the tables) and frontier.png.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

from loracompose.evaluate.independent import choose_independent, module_corpora
from loracompose.evaluate.panel import JudgeSettings, _Embeddings, judge_panel
from loracompose.paths import write_text_atomic
from loracompose.provenance import git_commit
from loracompose.versus.conditions import DIRECTIONS, VersusSettings
from loracompose.versus.generate import folder_name, generate_all, module_infos
from loracompose.versus.score import human_line, score_file
from loracompose.versus.table import frontier_plot, markdown, perplexity, summarize

log = logging.getLogger(__name__)


def load_blind(path: str | Path | None) -> dict:
    """(prompt set, condition name) → direction → blind-read shares, from `blind reveal`'s results."""
    if not path:
        return {}
    results = json.loads(Path(path).read_text())
    out: dict = {}
    for entry in results["conditions"]:
        meta = entry.get("versus") or {}
        if meta.get("prompt_set") and meta.get("condition"):
            out.setdefault((meta["prompt_set"], meta["condition"]), {})[meta.get("direction") or "base"] = entry
    return out


def run_versus(settings: VersusSettings, out: Path, blind: str | Path | None = None) -> Path:
    """Everything above; returns the path of versus.md."""
    start = time.perf_counter()
    infos = module_infos(settings)  # bad --modules fails before any work
    panel = judge_panel(settings.attribute, settings.judges or JudgeSettings(), progress=True)
    independent = choose_independent(panel, module_corpora(infos), settings.independent)
    plan = generate_all(settings, out)
    generated = time.perf_counter()
    reference = None
    if settings.reference:
        from loracompose.models import load_base

        reference = load_base(settings.reference, quantize=None)
    embeddings = _Embeddings(progress=False)
    scores = {}
    for prompt_set, condition, direction, path in plan:
        target = out / "scores" / path.relative_to(out / "generations").with_suffix(".json")
        log.info("scoring %s", path)
        scores[(prompt_set, condition, direction)] = score_file(path, target, panel, independent, reference,
                                                                settings.perplexity_seeds, embeddings)
    human = human_line(reference, tuple(panel.provenance.get("trained_on", ())), out / "scores" / "human-line.json") \
        if reference is not None else None
    blind_shares = load_blind(blind)
    tables, sections, base_ppl = {}, [], {}
    for prompt_set in settings.prompt_sets:
        base_rows = next(rows for (ps, c, d), rows in scores.items() if ps == prompt_set and c.method == "base")
        base_ppl[prompt_set] = perplexity(base_rows)
        results = {}
        for condition in settings.conditions():
            rows = {d: scores[(prompt_set, condition, None if condition.method == "base" else d)] for d in DIRECTIONS}
            shares = blind_shares.get((folder_name(prompt_set), condition.name))
            if shares and "base" in shares:
                shares = {d: shares["base"].get(d) for d in DIRECTIONS if shares["base"].get(d)}
            results[condition] = summarize(rows, base_rows, shares, settings.resamples)
        tables[prompt_set] = results
        sections.append(markdown(prompt_set, results, independent.record(), human, base_ppl[prompt_set]))
    plot = frontier_plot(tables, human, base_ppl, out / "frontier.png")
    seconds = {"total": round(time.perf_counter() - start, 1), "generation": round(generated - start, 1)}
    record = {"settings": {k: v for k, v in asdict(settings).items() if k != "judges"},
              "independent_judge": independent.record(), "human_line": human,
              "git_commit": git_commit(dirty_paths=("src",)), "seconds": seconds,
              "blind": str(blind) if blind else None,
              "tables": {ps: [{"condition": c.name, "label": c.label, **r} for c, r in results.items()]
                         for ps, results in tables.items()}}
    write_text_atomic(out / "versus.json", json.dumps(record, indent=2) + "\n")
    header = (f"# Side by side: {settings.attribute} steering on {settings.model}\n\n"
              f"Made by `loracompose versus` ({', '.join(settings.prompt_sets)} × seeds "
              f"{','.join(map(str, settings.seeds))}, {settings.max_new_tokens} new tokens, top-k 50, top-p 0.95; "
              f"perplexity under {settings.reference} on the texts of seed(s) "
              f"{','.join(map(str, settings.perplexity_seeds))}); commit {record['git_commit']}; this invocation "
              f"{seconds['total'] / 60:.1f} min (generations and scores already on disk are reused). "
              f"Frontier plot: `{plot.name}`.\n")
    return write_text_atomic(out / "versus.md", header + "\n" + "\n\n".join(sections) + "\n")
