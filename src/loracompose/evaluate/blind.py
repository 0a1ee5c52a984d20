"""A blind read: texts from several conditions, shuffled, their conditions hidden, labelled by a reader.

    loracompose blind draw --file NAME=PATH ... --per-condition 40 --out DIR
        → DIR/sheet.csv (what the reader sees), DIR/instructions.md, DIR/key.json (kept from the reader)
    loracompose blind reveal DIR --sheet FILLED.csv --reader "who read it"
        → DIR/results.json and a table: each condition's share read on target and read coherent

The sheet shows only an opaque id, the prompt and the continuation, in a seeded random
order. The reader fills two columns per row:

    sentiment   positive | negative | neutral     how the continuation reads
    coherent    yes | no                          fluent English that follows its prompt

A condition's target is its steering direction (from the records: `versus.direction` or
the `steer` record); "on target" is sentiment = target. For a condition without a target
(the base) the shares read positive and read negative are both reported. Shares carry 95 %
bootstrap intervals that resample prompts. Reveal refuses a sheet with ids or texts it did
not draw, missing rows, or labels outside the allowed values, and writes nothing then.
Who read is part of the result: a person, or an automated stand-in reader named as such.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loracompose.errors import LoraComposeError
from loracompose.evaluate.generations import read_generations
from loracompose.evaluate.significance import bootstrap_mean
from loracompose.paths import write_text_atomic

SENTIMENTS = ("positive", "negative", "neutral")
COHERENT = ("yes", "no")
COLUMNS = ("id", "prompt", "continuation", "sentiment", "coherent")
INSTRUCTIONS = """# Blind read

`sheet.csv` holds {n} short continuations of prompts, in random order; nothing on the sheet tells
how each was made. For each row, read the prompt followed by the continuation and fill two columns:

- **sentiment**: how the continuation reads — `positive`, `negative` or `neutral` (mixed or no sentiment).
- **coherent**: `yes` if it is fluent English that follows its prompt (a reader would accept it as a
  sensible continuation, even if odd), `no` if it is broken, nonsensical, or ignores the prompt.

Leave the id, prompt and continuation as they are. Then run
`loracompose blind reveal {directory} --sheet <filled sheet> --reader "<who read>"`.
"""


@dataclass(frozen=True)
class Source:
    name: str  # the condition's name in the results
    path: Path
    meta: dict  # anything the results should carry (e.g. versus: prompt set, condition, direction)


def _target(record_extra: dict) -> str | None:
    versus = record_extra.get("versus") or {}
    if versus.get("direction"):
        return versus["direction"]
    steer = record_extra.get("steer") or {}
    return (steer.get("targets") or {}).get("sentiment")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def draw(sources: list[Source], per_condition: int, out: Path, seed: int = 0) -> Path:
    """Write the sheet, the instructions and the key; returns the sheet's path."""
    if per_condition < 1:
        raise LoraComposeError(f"--per-condition {per_condition} must be at least 1")
    names = [s.name for s in sources]
    if len(set(names)) != len(names) or not sources:
        raise LoraComposeError(f"the conditions of a blind read need distinct names; got {', '.join(names) or 'none'}")
    if (out / "key.json").exists():
        raise LoraComposeError(f"{out} already holds a blind read (key.json); draw into another directory")
    rng = random.Random(f"blind:{seed}")
    items, conditions = [], {}
    for source in sources:
        records = read_generations(source.path)
        chosen = rng.sample(records, min(per_condition, len(records)))
        target = _target(records[0].extra) if records else None
        conditions[source.name] = {"file": str(source.path), "target": target, **source.meta}
        for r in chosen:
            items.append({"id": secrets.token_hex(4), "condition": source.name, "prompt": r.prompt, "text": r.text,
                          "seed": r.seed, "sample": r.sample})
    rng.shuffle(items)
    if len({i["id"] for i in items}) != len(items):  # 32-bit ids: a clash is vanishingly rare, but refuse it
        raise LoraComposeError("two drawn texts got the same id; draw again")
    sheet = io.StringIO()
    writer = csv.writer(sheet)
    writer.writerow(COLUMNS)
    for item in items:
        writer.writerow([item["id"], item["prompt"], item["text"], "", ""])
    key = {"conditions": conditions, "seed": seed, "per_condition": per_condition,
           "items": {i["id"]: {"condition": i["condition"], "prompt": i["prompt"], "seed": i["seed"],
                               "sample": i["sample"], "text": _digest(i["text"])} for i in items}}
    write_text_atomic(out / "key.json", json.dumps(key, indent=2) + "\n")
    write_text_atomic(out / "instructions.md", INSTRUCTIONS.format(n=len(items), directory=out))
    return write_text_atomic(out / "sheet.csv", sheet.getvalue())


def _read_sheet(path: Path, key: dict) -> dict[str, tuple[str, str]]:
    """id → (sentiment, coherent), checked against the key (see the module docstring)."""
    try:
        rows = list(csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8"))))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise LoraComposeError(f"cannot read the sheet {path}: {error}") from None
    if not rows or any(c not in rows[0] for c in COLUMNS):
        raise LoraComposeError(f"the sheet {path} must have the columns {', '.join(COLUMNS)}")
    labels: dict[str, tuple[str, str]] = {}
    for number, row in enumerate(rows, start=2):
        item = key["items"].get((row["id"] or "").strip())
        if item is None:
            raise LoraComposeError(f"{path} line {number}: id '{row['id']}' was not drawn for this blind read")
        if _digest(row["continuation"] or "") != item["text"] or row["prompt"] != item["prompt"]:
            raise LoraComposeError(f"{path} line {number}: the prompt or continuation of '{row['id']}' differs from "
                                   "the text that was drawn")
        sentiment, coherent = (row["sentiment"] or "").strip().lower(), (row["coherent"] or "").strip().lower()
        if sentiment not in SENTIMENTS or coherent not in COHERENT:
            raise LoraComposeError(f"{path} line {number}: labels '{row['sentiment']}', '{row['coherent']}' are not "
                                   f"allowed; sentiment: {', '.join(SENTIMENTS)}; coherent: {', '.join(COHERENT)}")
        if row["id"].strip() in labels:
            raise LoraComposeError(f"{path} line {number}: id '{row['id']}' appears twice")
        labels[row["id"].strip()] = (sentiment, coherent)
    missing = sorted(set(key["items"]) - set(labels))
    if missing:
        raise LoraComposeError(f"the sheet {path} lacks {len(missing)} of the {len(key['items'])} drawn texts "
                               f"(first: '{missing[0]}'); fill every row")
    return labels


def _share(hits: list[bool], prompts: list[str]) -> dict:
    ci = bootstrap_mean(np.array(hits, dtype=float), resamples=2000, groups=prompts)
    return {"value": ci.estimate, "ci": [ci.low, ci.high]}


def reveal(directory: Path, sheet: Path, reader: str) -> dict:
    """Each condition's shares from a filled sheet; writes directory/results.json."""
    if not reader or not reader.strip():
        raise LoraComposeError("--reader must say who read the sheet (a person, or an automated stand-in named as such)")
    key_path = Path(directory) / "key.json"
    if not key_path.is_file():
        raise LoraComposeError(f"{directory} holds no blind read (key.json); run `loracompose blind draw` first")
    key = json.loads(key_path.read_text())
    labels = _read_sheet(sheet, key)
    results = []
    for name, meta in key["conditions"].items():
        ids = [i for i, item in key["items"].items() if item["condition"] == name]
        prompts = [key["items"][i]["prompt"] for i in ids]
        coherent = _share([labels[i][1] == "yes" for i in ids], prompts)
        entry = {"condition": name, "target": meta["target"], "n": len(ids), "coherent": coherent,
                 "versus": {k: meta[k] for k in ("prompt_set", "condition", "direction") if k in meta}}
        if meta["target"]:
            entry["on_target"] = _share([labels[i][0] == meta["target"] for i in ids], prompts)
        else:
            for direction in ("positive", "negative"):
                entry[direction] = {"on_target": _share([labels[i][0] == direction for i in ids], prompts),
                                    "coherent": coherent, "n": len(ids)}
        results.append(entry)
    record = {"reader": reader.strip(), "sheet": str(sheet), "sheet_sha256": hashlib.sha256(Path(sheet).read_bytes()).hexdigest(),
              "texts": len(labels), "conditions": results}
    write_text_atomic(Path(directory) / "results.json", json.dumps(record, indent=2) + "\n")
    return record


def format_results(record: dict) -> str:
    lines = [f"blind read by {record['reader']}: {record['texts']} texts",
             f"{'condition':40} {'n':>4}  {'on target':>22}  {'coherent':>22}"]
    for entry in record["conditions"]:
        fmt = lambda s: f"{s['value']:.2f} [{s['ci'][0]:.2f}, {s['ci'][1]:.2f}]"  # noqa: E731
        if "on_target" in entry:
            target = f"{fmt(entry['on_target'])} ({entry['target']})"
        else:
            target = f"+ {entry['positive']['on_target']['value']:.2f} / − {entry['negative']['on_target']['value']:.2f}"
        lines.append(f"{entry['condition']:40} {entry['n']:>4}  {target:>22}  {fmt(entry['coherent']):>22}")
    return "\n".join(lines)
