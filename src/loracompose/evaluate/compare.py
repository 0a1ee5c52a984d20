"""Compare systems against a baseline: paired differences with p-values.

Each metrics.json (from `evaluate`) keeps per-sample hits under the key
(prompt, sample, seed); two files are paired on the keys they share. For every
other system and every targeted attribute (plus the joint hit when there are
several targets) the table gives

    Δ hard accuracy   with a paired bootstrap interval and the exact McNemar p-value
    Δ soft accuracy   with a paired bootstrap interval

(the bootstrap resamples prompts, each with all its paired samples and seeds)

and the McNemar p-values of the whole table form one family, adjusted by
Holm–Bonferroni. Perplexity and distinct-2 are listed beside them (computed on
each whole file, without a test). Both files must have been judged by the same
judges (same panel) with the same targets.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from loracompose.errors import LoraComposeError
from loracompose.evaluate.directions import is_directions
from loracompose.evaluate.significance import bootstrap_mean_of_means, holm, mcnemar_exact, paired_bootstrap


@dataclass
class Row:
    system: str
    metric: str
    base: float | None
    other: float | None
    difference: float | None
    ci: list[float] | None = None
    p_value: float | None = None
    p_holm: float | None = None
    pairs: int | None = None


def read_metrics(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise LoraComposeError(f"metrics file '{path}' does not exist (write one with: loracompose evaluate)")
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise LoraComposeError(f"metrics file '{path}' is not valid JSON ({exc.msg})") from exc
    if isinstance(metrics, dict) and metrics.get("kind") == "directions" and metrics.get("directions"):
        return metrics
    if not isinstance(metrics, dict) or not {"targets", "attributes", "samples"} <= set(metrics):
        raise LoraComposeError(
            f"metrics file '{path}' is not a loracompose metrics.json (it lacks targets, attributes or samples)")
    return metrics


def _key(sample: dict) -> tuple:
    return (sample["prompt"], sample["sample"], json.dumps(sample["seed"]))


def _check_comparable(base: dict, other: dict, name: str, base_name: str) -> None:
    if base["targets"] != other["targets"]:
        raise LoraComposeError(
            f"'{name}' was evaluated for targets {other['targets']}, '{base_name}' for {base['targets']}; "
            "evaluate both with the same --target")
    for attribute in base["targets"]:
        # The panel directory's name is <attribute>-<hash of settings and data>: equal names, equal judges.
        a = Path(base["attributes"][attribute].get("judge_panel") or "").name
        b = Path(other["attributes"][attribute].get("judge_panel") or "").name
        names_a = [j["name"] for j in base["attributes"][attribute]["judges"]]
        names_b = [j["name"] for j in other["attributes"][attribute]["judges"]]
        if a != b or names_a != names_b:
            raise LoraComposeError(
                f"'{name}' and '{base_name}' were judged by different {attribute} judges ({b} vs {a}); "
                "evaluate both with the same judge settings and --judge options")


def _paired(base: dict, other: dict, name: str, base_name: str) -> tuple[list[dict], list[dict]]:
    index = {_key(s): s for s in base["samples"]}
    pairs = [(index[_key(s)], s) for s in other["samples"] if _key(s) in index]
    if not pairs:
        raise LoraComposeError(
            f"'{name}' and '{base_name}' share no (prompt, sample, seed); paired tests need generations "
            "from the same prompts and seeds")
    return [a for a, _ in pairs], [b for _, b in pairs]


def _side(metrics: dict, *keys):
    value = metrics
    for key in keys:
        if not isinstance(value, dict) or value.get(key) is None:
            return None
        value = value[key]
    return value


def _rows(base: dict, other: dict, name: str, base_name: str, *, resamples: int, confidence: float, seed: int,
          prefix: str = "") -> tuple[list[Row], dict]:
    """The rows of one pair of single-target metrics, and the paired hits {hit set: (a, b, prompts)}."""
    _check_comparable(base, other, name, base_name)
    a_samples, b_samples = _paired(base, other, name, base_name)
    prompts = [s["prompt"] for s in a_samples]
    targets = list(base["targets"])
    hit_sets = {f"{a}={base['targets'][a]}": [a] for a in targets}
    if len(targets) > 1:
        hit_sets["joint"] = targets
    rows, paired = [], {}
    for label, attributes in hit_sets.items():
        a = np.array([all(s["hits"][t] for t in attributes) for s in a_samples])
        b = np.array([all(s["hits"][t] for t in attributes) for s in b_samples])
        paired[label] = (a, b, prompts)
        ci = paired_bootstrap(a, b, resamples=resamples, confidence=confidence, seed=seed, groups=prompts)
        rows.append(Row(name, f"{prefix}{label} hard", float(a.mean()), float(b.mean()), ci.estimate,
                        [ci.low, ci.high], mcnemar_exact(a, b).p_value, pairs=len(a)))
    for attribute in targets:
        a = np.array([s["soft"][attribute] for s in a_samples])
        b = np.array([s["soft"][attribute] for s in b_samples])
        ci = paired_bootstrap(a, b, resamples=resamples, confidence=confidence, seed=seed, groups=prompts)
        rows.append(Row(name, f"{prefix}{attribute}={base['targets'][attribute]} soft", float(a.mean()),
                        float(b.mean()), ci.estimate, [ci.low, ci.high], pairs=len(a)))
        paired[f"{attribute} soft"] = (a, b, prompts)
    for metric, keys in (("perplexity", ("fluency", "perplexity")), ("distinct-2", ("diversity", "distinct_2"))):
        x, y = _side(base, *keys), _side(other, *keys)
        rows.append(Row(name, f"{prefix}{metric}", x, y, None if x is None or y is None else y - x))
    return rows, paired


def _direction_rows(base: dict, other: dict, name: str, base_name: str, **kw) -> list[Row]:
    """Each direction's rows, then the mean over directions: Δ of the mean hard and soft accuracy with a
    bootstrap interval drawing the same prompts in every direction; its McNemar test pools the
    directions' pairs (the mean of equally long directions is their pooled mean)."""
    if base["attribute"] != other["attribute"] or list(base["directions"]) != list(other["directions"]):
        raise LoraComposeError(
            f"'{name}' steers {other['attribute']} toward {', '.join(other['directions'])}, '{base_name}' "
            f"{base['attribute']} toward {', '.join(base['directions'])}; compare the same directions")
    rows, per_direction = [], []
    for label in base["directions"]:
        more, paired = _rows(base["directions"][label], other["directions"][label], name, base_name,
                             prefix=f"toward {label}: ", **kw)
        rows += more
        per_direction.append(paired)
    attribute = base["attribute"]
    hard_key = "joint" if "joint" in per_direction[0] else None
    for kind in ("hard", "soft"):
        parts = []
        for label, paired in zip(base["directions"], per_direction):
            key = f"{attribute} soft" if kind == "soft" else (hard_key or f"{attribute}={label}")
            parts.append(paired[key])
        ci = bootstrap_mean_of_means([b.astype(float) - a.astype(float) for a, b, _ in parts],
                                     [g for *_, g in parts], resamples=kw["resamples"],
                                     confidence=kw["confidence"], seed=kw["seed"])
        base_mean = float(np.mean([a.mean() for a, _, _ in parts]))
        other_mean = float(np.mean([b.mean() for _, b, _ in parts]))
        p_value = (mcnemar_exact(np.concatenate([a for a, _, _ in parts]),
                                 np.concatenate([b for _, b, _ in parts])).p_value if kind == "hard" else None)
        rows.append(Row(name, f"mean of directions: {attribute} {'joint ' if hard_key and kind == 'hard' else ''}{kind}",
                        base_mean, other_mean, other_mean - base_mean, [ci.low, ci.high], p_value,
                        pairs=sum(len(a) for a, _, _ in parts)))
    return rows


def compare(base_path: str | Path, other_paths: list[str | Path], *, resamples: int = 10_000,
            confidence: float = 0.95, seed: int = 0) -> list[Row]:
    """Rows of differences (other − base) with McNemar p-values Holm-adjusted over the table.

    Metrics of both directions (`evaluate --positive … --negative …`) give each direction's rows
    and the mean over directions; both files must then hold the same directions."""
    if not other_paths:
        raise LoraComposeError("compare needs a baseline metrics file and at least one other")
    base = read_metrics(base_path)
    kw = {"resamples": resamples, "confidence": confidence, "seed": seed}
    rows: list[Row] = []
    for path in other_paths:
        other, name = read_metrics(path), str(path)
        if is_directions(base) != is_directions(other):
            both, one = (base_path, path) if is_directions(base) else (path, base_path)
            raise LoraComposeError(f"'{both}' holds both directions and '{one}' one target; compare like with "
                                   "like (evaluate both with --positive/--negative)")
        if is_directions(base):
            rows += _direction_rows(base, other, name, str(base_path), **kw)
        else:
            rows += _rows(base, other, name, str(base_path), **kw)[0]
    tested = [r for r in rows if r.p_value is not None]
    for row, adjusted in zip(tested, holm([r.p_value for r in tested])):
        row.p_holm = adjusted
    return rows


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"


def format_table(rows: list[Row], confidence: float = 0.95) -> str:
    header = ["system", "metric", "base", "other", "Δ", f"{confidence:.0%} CI of Δ", "p (McNemar)", "p (Holm)", "pairs"]
    lines = [[r.system, r.metric, _fmt(r.base), _fmt(r.other), _fmt(r.difference),
              f"[{_fmt(r.ci[0])}, {_fmt(r.ci[1])}]" if r.ci else "",
              _fmt(r.p_value, 4) if r.p_value is not None else "", _fmt(r.p_holm, 4) if r.p_holm is not None else "",
              str(r.pairs) if r.pairs else ""] for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    render = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([render(header), render(["-" * w for w in widths])] + [render(line) for line in lines])


def rows_as_dicts(rows: list[Row]) -> list[dict]:
    return [asdict(r) for r in rows]
