"""`loracompose report`: Markdown and HTML from the results database, with PNG plots.

In this order (the sentiment study first, then each task set in SETS' order):

    headline        output-sum of the single-dataset modules vs each single-dataset module (sentiment):
                    on a dataset's held-out test prompts against that dataset's module, on any other
                    prompt set against every one; per direction and both directions pooled (the study's
                    figure); Δ with a bootstrap interval clustered by prompt and McNemar p, Holm-adjusted
                    over the whole table; a forest plot per model
    study layout    sentiment: conditions down, per model % toward positive, negative and their mean,
                    perplexity and distinct-2 across (the study's results table)
    both directions sentiment: hard accuracy toward positive and toward negative from the same prompts,
                    and their mean with a bootstrap interval
    per task set    a table of conditions × models per prompt set and target: hard and soft accuracy
                    with 95% intervals, perplexity, distinct-2, n, and Δ hard accuracy against the
                    best single-dataset module with its Holm-adjusted McNemar p-value
    plots           accuracy by condition with intervals; accuracy against perplexity (when measured);
                    per-target heat map for the multi set
    examples        a few generations per condition

The document is built once as a list of blocks and written twice: Markdown
(plots as files beside it) and a single HTML file (plots embedded as data
URIs). Hand-written rather than through a Markdown library: the blocks are four
kinds, and both outputs must hold exactly the same numbers.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from loracompose.experiments import report_plots as plots
from loracompose.experiments.report_stats import (Summary, System, adjust, baseline_condition, direction_mean,
                                                  load_systems, measured_perplexity, ordered, paired_test, pooled,
                                                  samples_per_prompt, summarize)
from loracompose.experiments.tasksets import SETS
from loracompose.paths import write_text_atomic

ALPHA = 0.05
DIRECTIONS = {"sentiment": ("positive", "negative")}  # task sets reported in both directions
BOTH = "both (mean)"  # the headline's row for the directions pooled


@dataclass
class Block:
    kind: str  # "h1" | "h2" | "h3" | "p" | "table" | "image" | "code"
    text: str = ""
    header: list[str] | None = None
    rows: list[list[str]] | None = None
    path: Path | None = None


def _f(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _p(value) -> str:
    if value is None:
        return "–"
    return f"{value:.2g}" if value < 0.001 else f"{value:.3f}"


def _duration(seconds) -> str:
    if seconds is None:
        return "–"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _stages(text: str | None) -> str:
    counts = json.loads(text) if text else {}
    return ", ".join(f"{stage} {n}" for stage, n in counts.items()) or "none (all cached)"


def _code(run: dict) -> str:
    """The git commit a run used ("+local-changes": with uncommitted edits to the package)."""
    return run.get("code_version") or "unknown (not a git checkout, or a run before runs recorded their code)"


def _mark(test) -> str:
    """▲/▼: better/worse than the baseline with Holm-adjusted p < 0.05; = otherwise."""
    if test is None or test.p_holm is None:
        return ""
    if test.p_holm < ALPHA:
        return "▲" if test.difference > 0 else "▼"
    return "="


def _perplexity(summary: Summary) -> str:
    """Perplexity, with the number of texts it was measured on when that is a subset."""
    if summary.perplexity is None:
        return "–"
    return f"{summary.perplexity:.1f}" + (f" (n={summary.n_perplexity})" if summary.n_perplexity < summary.n else "")


def _interval(summary: Summary, attr: str) -> str:
    value, (lo, hi) = getattr(summary, attr), getattr(summary, f"{attr}_ci")
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def _prompt_set_order(prompt_sets) -> list[str]:
    """PPLM first, then held-out sets and files by name."""
    return sorted(set(prompt_sets), key=lambda p: (p != "pplm", p))


def _condition_order(task: str, conditions) -> list[str]:
    conditions = list(conditions)
    order = ["base"] + sorted(c for c in conditions if c.startswith("single:")) + list(SETS[task]["conditions"])
    return ordered(conditions, order)


def spec_models(runs: list[dict]) -> list[str]:
    """The models as the latest readable spec of `runs` (oldest first) lists them; [] if none does."""
    for run in reversed(runs):
        try:
            data = yaml.safe_load(run.get("spec") or "")
        except yaml.YAMLError:
            continue
        if isinstance(data, dict) and isinstance(data.get("models"), list):
            return [str(m) for m in data["models"]]
    return []


class ReportBuilder:
    def __init__(self, store, experiment: str, out: Path, examples: int):
        self.store, self.experiment, self.out, self.examples = store, experiment, out, examples
        self.systems = load_systems(store, experiment)
        # distinct-2 on as many samples per prompt and seed as the task set's smallest condition has
        self.diversity_samples = {task: min(samples_per_prompt(s) for k, s in self.systems.items() if k[1] == task)
                                  for task in {k[1] for k in self.systems}}
        self.summaries = {key: summarize(system, self.diversity_samples[key[1]])
                          for key, system in self.systems.items()}
        self.blocks: list[Block] = []
        # the spec's order (the order the runner trains and generates them in), not the database's
        self.models = ordered((k[0] for k in self.systems), spec_models(store.runs(experiment)))
        self.tables: dict[tuple, dict] = {}  # (task, prompt_set, target) → (model, condition) → (summary, test)
        self.directions: dict[tuple, dict] = {}  # (task, prompt_set) → "model|condition" → hard per direction, mean

    def add(self, kind: str, text: str = "", **kw) -> None:
        self.blocks.append(Block(kind, text, **kw))

    def build(self) -> list[Block]:
        runs = self.store.runs(self.experiment)
        last = [r for r in runs if r["status"] == "done"][-1:] or runs[-1:]
        self.add("h1", f"Experiment report: {self.experiment}")
        if last:
            r = last[0]
            when = (f"finished {r['finished']}" if r["finished"] else
                    f"started {r['started']}, {r['status'] or 'running'}")  # no run has finished yet
            self.add("p", f"Latest run {when} (UTC) on {r['machine']}, code {_code(r)}.")
        if runs:
            self.add("p", "Runs of this experiment (a later run reuses the stages an earlier one finished; a "
                          "stage's cache key covers its code, so a run on changed code recomputes what it changes):")
            self.add("table", header=["run", "started (UTC)", "finished (UTC)", "status", "executor", "wall time",
                                      "stages run", "code"],
                     rows=[[str(i), r["started"] or "–", r["finished"] or "–", r["status"] or "–", r["executor"] or "–",
                            _duration(r["wall_seconds"]), _stages(r["stages_run"]), _code(r)]
                           for i, r in enumerate(runs, 1)])
        self.add("p", "Hard accuracy: share of continuations whose judges' majority vote is the target (several "
                      "attributes: every one). Soft accuracy: mean probability of the target. Intervals: 95% "
                      "bootstrap over prompts. Δ: hard accuracy minus the baseline's on the same (prompt, "
                      "sample, seed); p: exact McNemar, Holm-adjusted over each table; ▲/▼ better/worse at "
                      "p < 0.05, = no significant difference. Perplexity: token-weighted, under the reference "
                      "model (– when not measured). distinct-2: distinct word bigrams per prompt, averaged "
                      "over prompts, on the same number of samples per prompt and seed in every condition of a "
                      "task set (the smallest condition's; the count is given where conditions differ).")
        tasks = ordered((k[1] for k in self.systems), list(SETS))  # the task sets' own order
        if "sentiment" in tasks:  # the study's comparison first: its headline, then its results table
            self._headline()
            self._study_table()
        for task in tasks:
            self._task(task)
        self._examples()
        if last:
            self.add("h2", "Spec")
            self.add("code", last[0]["spec"] or "")
        return self.blocks

    def _task(self, task: str) -> None:
        self.add("h2", f"Task set: {task}")
        keys = [k for k in self.systems if k[1] == task]
        conditions = _condition_order(task, (k[4] for k in keys))
        counts = {samples_per_prompt(self.systems[k]) for k in keys}
        if len(counts) > 1:
            shown = self.diversity_samples[task]
            self.add("p", f"Conditions have {', '.join(map(str, sorted(counts)))} samples per prompt and seed; "
                          f"distinct-2 is measured on the first {shown} of each in every condition.")
        for prompt_set in _prompt_set_order(k[2] for k in keys):
            self._directions(task, prompt_set, conditions)
            for target in ordered(k[3] for k in keys if k[2] == prompt_set):
                self._table(task, prompt_set, target, conditions)
        self._accuracy_plot(task, keys, conditions)
        self._perplexity_plot(task, keys, conditions)
        if task == "multi":
            self._heatmap(keys, conditions)

    def _directions(self, task: str, prompt_set: str, conditions: list[str]) -> None:
        """Both directions side by side and their mean (how the field reports sentiment control)."""
        directions = DIRECTIONS.get(task)
        if not directions:
            return
        rows = []
        for condition in conditions:
            for model in self.models:
                keys = [(model, task, prompt_set, d, condition) for d in directions]
                if not all(k in self.systems for k in keys):
                    continue
                mean = direction_mean([self.systems[k] for k in keys])
                self.directions.setdefault((task, prompt_set), {})[f"{model}|{condition}"] = {
                    **{d: self.summaries[k].hard for d, k in zip(directions, keys)},
                    "mean": None if mean is None else mean[0], "mean_ci": None if mean is None else list(mean[1])}
                rows.append([condition, plots.short(model), *(_interval(self.summaries[k], "hard") for k in keys),
                             "–" if mean is None else f"{mean[0]:.3f} [{mean[1][0]:.3f}, {mean[1][1]:.3f}]",
                             str(sum(self.summaries[k].n for k in keys))])
        if not rows:
            return
        self.add("h3", f"{task}, both directions, prompts {prompt_set}")
        self.add("p", "Hard accuracy toward each label from the same prompts, and their mean (95% bootstrap "
                      "interval drawing the same prompts in both directions) — the figures DExperts and the "
                      "study's authors report. A system that does not steer at all scores 0.5 on the mean "
                      "with a two-label judge, however its judges lean.")
        self.add("table", header=["condition", "model", *(f"toward {d}" for d in directions), "mean", "n"],
                 rows=rows)

    def _table(self, task: str, prompt_set: str, target: str, conditions: list[str]) -> None:
        present = [c for c in conditions if any((m, task, prompt_set, target, c) in self.systems for m in self.models)]
        hard = {c: sum(s.hard for s in found) / len(found) for c in present
                if (found := [self.summaries[k] for m in self.models
                              if (k := (m, task, prompt_set, target, c)) in self.summaries])}
        baseline = baseline_condition(present, prompt_set, hard)
        cells, tests = {}, []
        for model in self.models:
            base = self.systems.get((model, task, prompt_set, target, baseline))
            for condition in present:
                key = (model, task, prompt_set, target, condition)
                if key not in self.systems:
                    continue
                test = paired_test(base, self.systems[key]) if base is not None and condition != baseline else None
                tests.append(test)
                cells[(model, condition)] = (self.summaries[key], test)
        adjust(tests)
        self.tables[(task, prompt_set, target)] = cells
        self.add("h3", f"{task} → {target}, prompts {prompt_set} (baseline: {baseline or 'none'})")
        header = ["condition", "model", "hard accuracy", "soft accuracy", "Δ hard vs baseline", "p (Holm)", "",
                  "perplexity", "distinct-2", "n"]
        rows = []
        for condition in present:
            for model in self.models:
                if (model, condition) not in cells:
                    continue
                s, t = cells[(model, condition)]
                rows.append([condition + (" (baseline)" if condition == baseline else ""), plots.short(model),
                             _interval(s, "hard"), _interval(s, "soft"),
                             "–" if t is None else f"{t.difference:+.3f} [{t.ci[0]:+.3f}, {t.ci[1]:+.3f}]",
                             "–" if t is None else _p(t.p_holm), _mark(t), _perplexity(s), _f(s.distinct_2),
                             str(s.n)])
        self.add("table", header=header, rows=rows)

    def _accuracy_plot(self, task: str, keys, conditions: list[str]) -> None:
        for model in self.models:
            for target in ordered(k[3] for k in keys if k[0] == model):
                series = _prompt_set_order(k[2] for k in keys if k[0] == model and k[3] == target)
                rows = {(k[2], k[4]): self.summaries[k] for k in keys if k[0] == model and k[3] == target}
                name = f"accuracy-{task}-{_slug(target)}-{_slug(plots.short(model))}.png"
                path = plots.accuracy_by_condition(rows, conditions, series,
                                                   f"{task} → {target} ({plots.short(model)})", self.out / name)
                self.add("image", f"Hard accuracy by condition, {task} → {target}, {plots.short(model)}; one "
                                  "series per prompt set; bars: 95% intervals.", path=path)

    def _perplexity_plot(self, task: str, keys, conditions: list[str]) -> None:
        for model in self.models:
            points = []
            for condition in conditions:
                pooled = System(model, task, "*", "*", condition,
                                [s for k in keys if k[0] == model and k[4] == condition for s in self.systems[k].samples])
                ppl, _ = measured_perplexity(pooled.samples)
                if ppl is not None:
                    points.append((condition, ppl, float(pooled.hits().mean())))
            if not points:
                self.add("p", f"Accuracy against perplexity ({task}, {plots.short(model)}): perplexity was not "
                              "measured in this experiment (evaluate.reference: none).")
                continue
            name = f"perplexity-{task}-{_slug(plots.short(model))}.png"
            path = plots.accuracy_vs_perplexity(points, f"{task}: accuracy vs perplexity ({plots.short(model)})",
                                                self.out / name)
            self.add("image", f"Hard accuracy against perplexity per condition ({task}, {plots.short(model)}), "
                              "pooled over targets and prompt sets.", path=path)

    def _heatmap(self, keys, conditions: list[str]) -> None:
        for model in self.models:
            values, sentiments, topics = {}, [], []
            for condition in conditions:
                for target in ordered(k[3] for k in keys if k[0] == model):
                    samples = [s for k in keys if k[0] == model and k[3] == target and k[4] == condition
                               for s in self.systems[k].samples]
                    if not samples:
                        continue
                    sentiment, topic = target.split("+")
                    sentiments.append(sentiment)
                    topics.append(topic)
                    values[(condition, sentiment, topic)] = sum(all(s["hits"].values()) for s in samples) / len(samples)
            if not values:
                continue
            name = f"heatmap-multi-{_slug(plots.short(model))}.png"
            path = plots.target_heatmap(values, ordered(sentiments), ordered(topics), conditions,
                                        f"multi: joint hard accuracy per target ({plots.short(model)})",
                                        self.out / name)
            self.add("image", f"Joint hard accuracy per sentiment × topic target ({plots.short(model)}), pooled "
                              "over prompt sets.", path=path)

    def _headline(self) -> None:
        """Output-sum of the single-dataset modules against each of them, paired on (prompt, sample, seed):
        on a held-out set against that dataset's module, on any other prompt set against every one; and,
        where both directions were run on the same prompts, on their mean (the study's figure) as well."""
        self.add("h2", "Headline: output-sum of the single-dataset modules vs each single-dataset module")
        header = ["model", "target", "prompts", "single-dataset module", "single", "output-sum",
                  "Δ output-sum − single", "p (McNemar)", "p (Holm)", "", "pairs"]
        found = []  # (model, target, prompt set, single condition, baseline system, output-sum system)
        for (model, task, prompt_set, target, condition), system in self.systems.items():
            if (task, condition) != ("sentiment", "output-sum"):
                continue
            if prompt_set.startswith("heldout:"):
                singles = [f"single:{prompt_set.split(':', 1)[1]}"]
            else:
                singles = sorted(k[4] for k in self.systems if k[:4] == (model, task, prompt_set, target)
                                 and k[4].startswith("single:"))
            for single in singles:
                baseline = self.systems.get((model, task, prompt_set, target, single))
                if baseline is not None:
                    found.append((model, target, prompt_set, single, baseline, system))
        if not found:
            self.add("p", "Not available: the experiment needs the sentiment set's output-sum and single "
                          "conditions on the same prompts.")
            return
        directions = DIRECTIONS["sentiment"]
        for model, prompt_set, single in sorted({(f[0], f[2], f[3]) for f in found}):
            pair = {f[1]: f for f in found if (f[0], f[2], f[3]) == (model, prompt_set, single)}
            if set(pair) == set(directions):
                found.append((model, BOTH, prompt_set, single, pooled([pair[d][4] for d in directions], BOTH),
                              pooled([pair[d][5] for d in directions], BOTH)))
        order = {target: i for i, target in enumerate((*directions, BOTH))}
        found.sort(key=lambda f: (self.models.index(f[0]), f[2], order.get(f[1], -1), f[1], f[3]))
        tests = [paired_test(baseline, summed) for *_, baseline, summed in found]
        adjust(tests)
        summary = lambda s: self.summaries.get((s.model, s.task, s.prompt_set, s.target, s.condition)) or \
            summarize(s)  # noqa: E731  (the pooled systems are not in the per-target tables)
        rows = [[plots.short(model), target, prompt_set, single.split(":", 1)[1], _interval(summary(baseline), "hard"),
                 _interval(summary(summed), "hard"), f"{test.difference:+.3f} [{test.ci[0]:+.3f}, {test.ci[1]:+.3f}]",
                 _p(test.p), _p(test.p_holm), _mark(test), str(test.pairs)]
                for (model, target, prompt_set, single, baseline, summed), test in zip(found, tests)]
        self.add("p", f"Hard accuracy; Δ with a 95% paired bootstrap interval that resamples prompts; exact "
                      f"McNemar p on the paired hits, Holm-adjusted over this table. Target '{BOTH}': both "
                      f"directions' pairs together, so accuracy is the mean of the two (the study's figure) and "
                      f"a prompt's pairs in both directions are resampled together.")
        self.add("table", header=header, rows=rows)
        for model in ordered(f[0] for f in found):
            points = [(f"{target}: vs {single.split(':', 1)[1]}" + (f" ({prompt_set})" if len(
                {f[2] for f in found}) > 1 else ""), t.difference, *t.ci)
                for (m, target, prompt_set, single, *_), t in zip(found, tests) if m == model]
            path = plots.differences(points, f"output-sum − single-dataset module ({plots.short(model)})",
                                     self.out / f"headline-{_slug(plots.short(model))}.png")
            self.add("image", f"Δ hard accuracy, output-sum minus each single-dataset module, "
                              f"{plots.short(model)}; bars: 95% bootstrap intervals over prompts.", path=path)
        for label, part in (("Per direction", [(f, t) for f, t in zip(found, tests) if f[1] != BOTH]),
                            (f"On {BOTH}", [(f, t) for f, t in zip(found, tests) if f[1] == BOTH])):
            if not part:
                continue
            wins = sum(1 for _, t in part if t.difference > 0)
            better = sum(1 for _, t in part if t.p_holm < ALPHA and t.difference > 0)
            worse = sum(1 for _, t in part if t.p_holm < ALPHA and t.difference < 0)
            self.add("p", f"{label}, output-sum scores above the single-dataset module in {wins} of {len(part)} "
                          f"comparisons; after Holm correction (α = {ALPHA}) it is significantly better in {better} "
                          f"and significantly worse in {worse}.")

    def _study_table(self) -> None:
        """The sentiment grid as the study lays it out: conditions down, models across, each direction's
        hard accuracy (%) and their mean, with perplexity and distinct-2."""
        keys = [k for k in self.systems if k[1] == "sentiment"]
        if not keys:
            return
        conditions = _condition_order("sentiment", (k[4] for k in keys))
        for prompt_set in _prompt_set_order(k[2] for k in keys):
            header, rows = ["condition"], []
            models = [m for m in self.models if any(k[0] == m and k[2] == prompt_set for k in keys)]
            for model in models:
                name = plots.short(model)
                header += [f"{name} positive", f"{name} negative", f"{name} mean", f"{name} ppl", f"{name} dist-2"]
            for condition in conditions:
                row, any_cell = [condition], False
                for model in models:
                    found = [self.systems.get((model, "sentiment", prompt_set, d, condition))
                             for d in DIRECTIONS["sentiment"]]
                    pooled = [s for s in found if s is not None]
                    any_cell |= bool(pooled)
                    row += [f"{100 * self.summaries[s.model, s.task, s.prompt_set, s.target, s.condition].hard:.1f}"
                            if s is not None else "–" for s in found]
                    mean = direction_mean(found) if len(pooled) == len(found) else None
                    row.append("–" if mean is None else f"{100 * mean[0]:.1f}")
                    ppl, _ = measured_perplexity([x for s in pooled for x in s.samples])
                    d2 = [self.summaries[s.model, s.task, s.prompt_set, s.target, s.condition].distinct_2
                          for s in pooled]
                    row += ["–" if ppl is None else f"{ppl:.1f}",
                            "–" if not d2 or None in d2 else _f(sum(d2) / len(d2))]
                if any_cell:
                    rows.append(row)
            self.add("h2", f"Sentiment, prompts {prompt_set}: the study's layout")
            self.add("p", "Hard accuracy (%) toward each label and their mean; perplexity (on the measured "
                          "subset) pooled over both directions; distinct-2 the mean of the two directions'. "
                          "Intervals and tests: the headline above and the per-target tables below.")
            self.add("table", header=header, rows=rows)

    def _example_order(self, key: tuple) -> tuple:
        model, task, prompt_set, target, condition = key
        conditions = _condition_order(task, (k[4] for k in self.systems if k[1] == task))
        tasks = ordered((k[1] for k in self.systems), list(SETS))
        return self.models.index(model), tasks.index(task), target, conditions.index(condition)

    def _examples(self) -> None:
        self.add("h2", "Example generations")
        for key in sorted(self.systems, key=self._example_order):
            model, task, prompt_set, target, condition = key
            system = self.systems[key]
            if prompt_set != _prompt_set_order(k[2] for k in self.systems if k[1] == task)[0]:
                continue  # the first prompt set of each task only
            shown = [s for s in system.samples if s["sample"] == 0][: self.examples]
            if not shown:
                continue
            self.add("h3", f"{task} → {target}, {condition} ({plots.short(model)}, prompts {prompt_set})")
            rows = [[s["prompt"], " ".join((s["text"] or "").split()),
                     "✔" if all(s["hits"].values()) else "✘"] for s in shown]
            self.add("table", header=["prompt", "continuation", "on target"], rows=rows)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block], out: Path) -> str:
    lines = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            lines += ["#" * int(b.kind[1]) + " " + b.text, ""]
        elif b.kind == "p":
            lines += [b.text, ""]
        elif b.kind == "table":
            lines.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
            lines.append("|" + "|".join("---" for _ in b.header) + "|")
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            lines.append("")
        elif b.kind == "image":
            lines += [f"![{b.text}]({b.path.relative_to(out).as_posix()})", "", f"*{b.text}*", ""]
        elif b.kind == "code":
            lines += ["```yaml", b.text.rstrip(), "```", ""]
    return "\n".join(lines)


def to_html(blocks: list[Block], title: str) -> str:
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>"
             "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f3f3f3}"
             "img{max-width:100%}pre{background:#f6f6f6;padding:1em;overflow:auto}</style></head><body>"]
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            parts.append(f"<{b.kind}>{e(b.text)}</{b.kind}>")
        elif b.kind == "p":
            parts.append(f"<p>{e(b.text)}</p>")
        elif b.kind == "table":
            parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in b.header) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in b.rows]
            parts.append("</table>")
        elif b.kind == "image":
            data = base64.b64encode(b.path.read_bytes()).decode()
            parts.append(f"<figure><img src='data:image/png;base64,{data}' alt='{e(b.text)}'>"
                         f"<figcaption>{e(b.text)}</figcaption></figure>")
        elif b.kind == "code":
            parts.append(f"<pre>{e(b.text)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(store, experiment: str, out: str | Path, examples: int = 3) -> dict[str, Path]:
    """Write report.md, report.html and the PNGs into `out`; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    builder = ReportBuilder(store, experiment, out, examples)
    blocks = builder.build()
    markdown = write_text_atomic(out / "report.md", to_markdown(blocks, out))
    page = write_text_atomic(out / "report.html", to_html(blocks, f"loracompose report: {experiment}"))
    tables = {"|".join(k): {f"{m}|{c}": {"hard": s.hard, "soft": s.soft, "perplexity": s.perplexity,
                                         "distinct_2": s.distinct_2, "n": s.n,
                                         "p_holm": None if t is None else t.p_holm}
                            for (m, c), (s, t) in cells.items()}
              for k, cells in builder.tables.items()}
    tables.update({f"directions|{task}|{prompt_set}": cells for (task, prompt_set), cells in builder.directions.items()})
    data = write_text_atomic(out / "tables.json", json.dumps(tables, indent=2) + "\n")
    return {"markdown": markdown, "html": page, "tables": data}
