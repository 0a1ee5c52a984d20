"""Reading a generations JSONL file (what `loracompose generate` writes) and pairing two of them.

Each line is one JSON object with at least `prompt` and `text` (the
continuation, without the prompt), both strings. Optional: `sample` (index of
the continuation for its prompt), `seed`, and fields describing the system
(`condition`, `composition`, `module`, `modules`, `method`, `model`).

Pairing rule for paired tests: two files are paired by the key
(prompt, sample, seed). A record without `sample` takes as its sample its
occurrence number among earlier records with the same prompt and seed, in file
order, so files without sample indices pair by their order within each prompt.
Keys must be unique within a file.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from loracompose.errors import LoraComposeError

REQUIRED = ("prompt", "text")
# Fields that describe *which system* produced a record; a file must hold one system.
SYSTEM_FIELDS = ("condition", "composition", "module", "modules", "method", "model")

Key = tuple[str, int, object]


@dataclass(frozen=True)
class Generation:
    prompt: str
    text: str  # the continuation only
    sample: int
    seed: object  # int, or None when the file does not record it
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def key(self) -> Key:
        return (self.prompt, self.sample, self.seed)


def _parse_line(path: Path, number: int, line: str) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise LoraComposeError(
            f"generations file '{path}' line {number} is not valid JSON ({exc.msg}); "
            "each line must be one JSON object with at least \"prompt\" and \"text\""
        ) from exc
    if not isinstance(record, dict):
        raise LoraComposeError(
            f"generations file '{path}' line {number} is a JSON {type(record).__name__}, not an object "
            "with \"prompt\" and \"text\""
        )
    missing = [f for f in REQUIRED if f not in record]
    if missing:
        raise LoraComposeError(
            f"generations file '{path}' line {number} lacks the field(s) {', '.join(missing)}; "
            f"it has {', '.join(sorted(record)) or 'no fields'} (required: prompt, text)"
        )
    for name in REQUIRED:
        if not isinstance(record[name], str):
            raise LoraComposeError(
                f"generations file '{path}' line {number}: field '{name}' is a {type(record[name]).__name__}, "
                "it must be a string"
            )
    if "sample" in record and not (isinstance(record["sample"], int) and not isinstance(record["sample"], bool)):
        raise LoraComposeError(f"generations file '{path}' line {number}: 'sample' must be an integer index")
    return record


def system_of(record: dict) -> str:
    """A canonical description of the system that made a record (its system fields)."""
    return json.dumps({k: record[k] for k in SYSTEM_FIELDS if k in record}, sort_keys=True)


def read_generations(path: str | Path) -> list[Generation]:
    """Read and check a generations file; every problem names the line and what is accepted."""
    path = Path(path)
    if not path.is_file():
        raise LoraComposeError(f"generations file '{path}' does not exist (expected a JSONL file)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise LoraComposeError(f"generations file '{path}' is not UTF-8 text: {exc}") from exc
    records = [(i, _parse_line(path, i, line)) for i, line in enumerate(lines, start=1) if line.strip()]
    if not records:
        raise LoraComposeError(f"generations file '{path}' is empty; it needs one JSON object per line "
                               "with \"prompt\" and \"text\"")
    systems = Counter(system_of(r) for _, r in records)
    if len(systems) > 1:
        shown = "; ".join(s for s, _ in systems.most_common(3))
        raise LoraComposeError(
            f"generations file '{path}' mixes {len(systems)} systems ({shown}{'; …' if len(systems) > 3 else ''}); "
            "evaluate one system per file (split it by these fields)"
        )
    seen: Counter = Counter()
    out, keys = [], {}
    for number, r in records:
        seed = r.get("seed")
        if isinstance(seed, (list, dict)):  # keys must be hashable
            seed = json.dumps(seed, sort_keys=True)
        sample = r["sample"] if "sample" in r else seen[(r["prompt"], json.dumps(seed))]
        seen[(r["prompt"], json.dumps(seed))] += 1
        extra = {k: v for k, v in r.items() if k not in ("prompt", "text", "sample", "seed")}
        g = Generation(r["prompt"], r["text"], sample, seed, extra)
        if g.key in keys:
            raise LoraComposeError(
                f"generations file '{path}' lines {keys[g.key]} and {number} share prompt, sample and seed "
                f"({g.prompt[:40]!r}, {g.sample}, {g.seed}); each continuation needs its own key"
            )
        keys[g.key] = number
        out.append(g)
    return out


def steered_label(record: dict, attribute: str, labels) -> tuple[str | None, dict[str, float]]:
    """The label of `attribute` a record's composition steers toward, with the net weight per label.

    A module counts for label L when its metadata names L (combined modules: "positive+sport")
    and its attribute includes `attribute`; its weight adds to L's net weight. The steered label is
    the one with the largest net weight when that is positive and no other label ties it; records
    without a composition (the base model) steer toward none. Example: positive=1, negative=−1
    steers toward positive.
    """
    composition = record.get("composition")
    if not isinstance(composition, dict):
        return None, {}
    weights, targets = composition.get("weights") or {}, composition.get("targets") or {}
    net = {label: 0.0 for label in labels}
    for name, info in targets.items():
        if not isinstance(info, dict) or attribute not in str(info.get("attribute") or attribute).split("+"):
            continue
        for label in str(info.get("label") or "").split("+"):
            if label in net and isinstance(weights.get(name), (int, float)):
                net[label] += float(weights[name])
    ranked = sorted(net.items(), key=lambda kv: -kv[1])
    if not ranked or ranked[0][1] <= 0 or (len(ranked) > 1 and ranked[1][1] == ranked[0][1]):
        return None, net
    return ranked[0][0], net


def check_direction(records: list[Generation], path, attribute: str, label: str, labels) -> None:
    """Refuse generations whose composition steers `attribute` toward another label than `label`."""
    steered, net = steered_label(records[0].extra, attribute, labels)
    if steered is not None and steered != label:
        weights = ", ".join(f"{k} {v:+g}" for k, v in net.items() if v)
        raise LoraComposeError(
            f"generations file '{path}' was given as the {attribute}={label} direction, but its composition "
            f"steers toward {steered} (net module weight per label: {weights}); pass it as the {steered} "
            f"direction (e.g. --{steered} {path}) or evaluate it for {attribute}={steered}")
