"""The results database: SQLite (the standard library's sqlite3), one file per working directory.

    runs     one row per `loracompose run`: experiment, spec text, executor, machine, code version (git
             commit, "+local-changes" when the package was edited), start, end, wall time
    results  one row per experiment × model × task × prompt set × condition × target × seed:
             hard and soft accuracy with their 95% intervals (for several attributes, hard is the joint
             accuracy and soft the mean over samples of each sample's mean over attributes of P(target),
             its interval a bootstrap of that mean over prompts; each attribute's own figures are in
             `attributes`), perplexity with its interval, distinct-1/2/3, the number of samples,
             the stage keys and provenance (judges, settings, versions, git commit)
    samples  each sample of a result: prompt, sample index, text, hits and soft scores per attribute,
             NLL and token count — what the report pools over seeds and pairs for its tests

A result row is replaced when the same cell is stored again (a rerun writes the same numbers).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np

from loracompose.evaluate.significance import bootstrap_mean

IDENTITY = ("experiment", "model", "task", "prompt_set", "condition", "target", "seed")
METRICS = ("hard", "hard_low", "hard_high", "soft", "soft_low", "soft_high", "perplexity", "perplexity_low",
           "perplexity_high", "distinct_1", "distinct_2", "distinct_3", "n")
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, experiment TEXT NOT NULL, spec TEXT, executor TEXT, machine TEXT,
    started TEXT, finished TEXT, wall_seconds REAL, status TEXT, log TEXT, units INTEGER, stages_run TEXT,
    code_version TEXT);
CREATE TABLE IF NOT EXISTS results (
    {", ".join(f"{c} {'INTEGER' if c == 'seed' else 'TEXT'} NOT NULL" for c in IDENTITY)},
    {", ".join(f"{c} REAL" for c in METRICS)},
    attributes TEXT, generate_key TEXT, evaluate_key TEXT, provenance TEXT, run_id INTEGER, created TEXT,
    PRIMARY KEY ({", ".join(IDENTITY)}));
CREATE TABLE IF NOT EXISTS samples (
    {", ".join(f"{c} {'INTEGER' if c == 'seed' else 'TEXT'} NOT NULL" for c in IDENTITY)},
    prompt TEXT NOT NULL, sample INTEGER NOT NULL, text TEXT, hits TEXT, soft TEXT, nll REAL, tokens INTEGER,
    PRIMARY KEY ({", ".join(IDENTITY)}, prompt, sample));
"""


def _joint_soft(metrics: dict) -> dict:
    """Soft accuracy over several attributes: the mean over samples of each sample's mean over attributes
    of P(target | text), with the evaluation's own bootstrap (prompts resampled, same resamples, confidence
    and seed) of that mean. One attribute: the evaluation's figure as it is.

    Averaging the attributes' interval ends instead would not be an interval of anything: the ends of
    two intervals are not reached on the same resamples."""
    attributes = metrics["attributes"]
    if len(attributes) == 1:
        return next(iter(attributes.values()))["soft_accuracy"]
    samples = metrics.get("samples") or []
    if not samples:  # no per-sample data to resample: the mean alone
        return {"value": float(np.mean([a["soft_accuracy"]["value"] for a in attributes.values()])),
                "ci": [None, None]}
    bootstrap = (metrics.get("provenance") or {}).get("bootstrap") or {}
    scores = [float(np.mean([s["soft"][a] for a in attributes])) for s in samples]
    ci = bootstrap_mean(scores, resamples=bootstrap.get("resamples", 10_000),
                        confidence=bootstrap.get("confidence", 0.95), seed=bootstrap.get("seed", 0),
                        groups=[s["prompt"] for s in samples])
    return {"value": ci.estimate, "ci": [ci.low, ci.high]}


def _summary(metrics: dict) -> dict:
    attributes = metrics["attributes"]
    hard = metrics.get("joint_hard_accuracy") or next(iter(attributes.values()))["hard_accuracy"]
    soft = _joint_soft(metrics)
    fluency = metrics.get("fluency") or {}
    ci = fluency.get("ci") or [None, None]
    d = metrics["diversity"]
    return {"hard": hard["value"], "hard_low": hard["ci"][0], "hard_high": hard["ci"][1],
            "soft": soft["value"], "soft_low": soft["ci"][0], "soft_high": soft["ci"][1],
            "perplexity": fluency.get("perplexity"), "perplexity_low": ci[0], "perplexity_high": ci[1],
            "distinct_1": d["distinct_1"], "distinct_2": d["distinct_2"], "distinct_3": d["distinct_3"],
            "n": metrics["generations"]["records"]}


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path)
        self.db.row_factory = sqlite3.Row
        self.db.executescript(SCHEMA)
        columns = {row["name"] for row in self.db.execute("PRAGMA table_info(runs)")}
        if "code_version" not in columns:  # a database written before runs recorded their code
            with self.db:
                self.db.execute("ALTER TABLE runs ADD COLUMN code_version TEXT")

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def start_run(self, experiment: str, spec: str, executor: str, machine: str, started: str, log: str,
                  commit: str | None = None) -> int:
        with self.db:
            cursor = self.db.execute(
                "INSERT INTO runs (experiment, spec, executor, machine, started, status, log, code_version) "
                "VALUES (?,?,?,?,?,?,?,?)", (experiment, spec, executor, machine, started, "running", log, commit))
        return int(cursor.lastrowid)

    def finish_run(self, run_id: int, finished: str, wall_seconds: float, status: str, units: int,
                   stages_run: dict) -> None:
        with self.db:
            self.db.execute("UPDATE runs SET finished=?, wall_seconds=?, status=?, units=?, stages_run=? WHERE id=?",
                            (finished, wall_seconds, status, units, json.dumps(stages_run), run_id))

    def put(self, row: dict, run_id: int | None = None, created: str = "") -> None:
        """Store one cell's result and its samples (replacing an earlier copy of the same cell)."""
        metrics = row["metrics"]
        identity = [row[c] for c in IDENTITY]
        summary = _summary(metrics)
        attributes = {a: {"target": r["target"], "hard": r["hard_accuracy"], "soft": r["soft_accuracy"],
                          "judge_panel": r.get("judge_panel")} for a, r in metrics["attributes"].items()}
        provenance = {**metrics.get("provenance", {}), "fluency": {k: v for k, v in (metrics.get("fluency") or {}).items()
                                                                   if k.startswith("reference")}}
        where = " AND ".join(f"{c}=?" for c in IDENTITY)
        with self.db:
            self.db.execute(f"DELETE FROM samples WHERE {where}", identity)
            self.db.execute(
                f"INSERT OR REPLACE INTO results ({', '.join(IDENTITY + METRICS)}, attributes, generate_key, "
                f"evaluate_key, provenance, run_id, created) VALUES ({', '.join('?' * (len(IDENTITY) + len(METRICS) + 6))})",
                [*identity, *(summary[m] for m in METRICS), json.dumps(attributes), row["generate_key"],
                 row["evaluate_key"], json.dumps(provenance), run_id, created])
            self.db.executemany(
                f"INSERT INTO samples ({', '.join(IDENTITY)}, prompt, sample, text, hits, soft, nll, tokens) "
                f"VALUES ({', '.join('?' * (len(IDENTITY) + 7))})",
                [[*identity, s["prompt"], s["sample"], s.get("text"), json.dumps(s["hits"]), json.dumps(s["soft"]),
                  s.get("nll"), s.get("tokens")] for s in metrics["samples"]])

    def results(self, **filters) -> list[dict]:
        clauses = [(k, v) for k, v in filters.items() if v is not None]
        where = " AND ".join(f"{k}=?" for k, _ in clauses) or "1"
        rows = self.db.execute(f"SELECT * FROM results WHERE {where} ORDER BY {', '.join(IDENTITY)}",
                               [v for _, v in clauses])
        return [dict(r) for r in rows]

    def samples(self, **filters) -> list[dict]:
        clauses = [(k, v) for k, v in filters.items() if v is not None]
        where = " AND ".join(f"{k}=?" for k, _ in clauses) or "1"
        rows = self.db.execute(f"SELECT * FROM samples WHERE {where} ORDER BY seed, prompt, sample",
                               [v for _, v in clauses])
        out = []
        for r in rows:
            r = dict(r)
            r["hits"], r["soft"] = json.loads(r["hits"]), json.loads(r["soft"])
            out.append(r)
        return out

    def runs(self, experiment: str | None = None) -> list[dict]:
        if experiment is None:
            return [dict(r) for r in self.db.execute("SELECT * FROM runs ORDER BY id")]
        return [dict(r) for r in self.db.execute("SELECT * FROM runs WHERE experiment=? ORDER BY id", (experiment,))]

    def experiments(self) -> list[str]:
        """Experiments with results, the most recently run last."""
        rows = self.db.execute("SELECT experiment, MAX(rowid) AS last FROM results GROUP BY experiment ORDER BY last")
        return [r["experiment"] for r in rows]
