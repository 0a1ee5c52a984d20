"""The report renders from a results database with known rows, and its tables hold those numbers."""

from __future__ import annotations

import json
import math

import pytest

from loracompose.cli import main
from loracompose.experiments.report import write_report
from loracompose.experiments.store import Store

PROMPTS = [f"Prompt {i}" for i in range(6)]
# 12 samples (6 prompts × 2) per condition, paired on (prompt, sample, seed).
HITS = {
    "single:imdb": [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0],  # 4/12
    "output-sum": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0],  # 10/12: 6 discordant pairs, all won → p = 2/2^6
    "base": [1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # 2/12: 2 discordant pairs, both lost → p = 2/2^2 = 0.5
}


def metrics(hits: list[int]) -> dict:
    samples = [{"prompt": PROMPTS[i // 2], "sample": i % 2, "seed": 0, "hits": {"sentiment": bool(h)},
                "soft": {"sentiment": 0.9 if h else 0.2}, "nll": 5 * math.log(20.0), "tokens": 5,
                "text": f" words {i} and more {i} text"} for i, h in enumerate(hits)]
    value = sum(hits) / len(hits)
    return {"attributes": {"sentiment": {"target": "positive", "hard_accuracy": {"value": value, "ci": [0, 1]},
                                         "soft_accuracy": {"value": 0.5, "ci": [0, 1]}, "judge_panel": "p"}},
            "joint_hard_accuracy": None, "generations": {"records": len(hits)},
            "fluency": {"perplexity": 20.0, "ci": [19, 21], "reference_model": "ref"},
            "diversity": {"distinct_1": 1.0, "distinct_2": 1.0, "distinct_3": 1.0}, "provenance": {},
            "samples": samples}


@pytest.fixture()
def db(tmp_path):
    path = tmp_path / "results.sqlite"
    with Store(path) as store:
        run = store.start_run("known", "name: known\n", "inprocess", "test machine", "2026-01-01T00:00:00", "log")
        for condition, hits in HITS.items():
            store.put({"experiment": "known", "model": "tiny", "task": "sentiment", "prompt_set": "heldout:imdb",
                       "condition": condition, "target": "positive", "seed": 0, "generate_key": "g",
                       "evaluate_key": condition, "metrics": metrics(hits)}, run)
        for target, hits in (("positive+sport", HITS["output-sum"]), ("negative+sport", HITS["base"])):
            m = metrics(hits)
            for s in m["samples"]:
                s["hits"]["topic"], s["soft"]["topic"] = True, 0.8
            store.put({"experiment": "known", "model": "tiny", "task": "multi", "prompt_set": "pplm",
                       "condition": "output-sum", "target": target, "seed": 0, "generate_key": "g",
                       "evaluate_key": target, "metrics": m}, run)
        store.finish_run(run, "2026-01-01T00:10:00", 600.0, "done", 3, {"train": 1})
    return path


def test_report_tables_hold_the_known_numbers(db, tmp_path):
    with Store(db) as store:
        paths = write_report(store, "known", tmp_path / "report")
    md = paths["markdown"].read_text()
    tables = json.loads(paths["tables"].read_text())["sentiment|heldout:imdb|positive"]
    assert tables["tiny|output-sum"]["hard"] == pytest.approx(10 / 12)
    assert tables["tiny|single:imdb"]["hard"] == pytest.approx(4 / 12)
    assert tables["tiny|base"]["hard"] == pytest.approx(2 / 12)
    assert tables["tiny|output-sum"]["perplexity"] == pytest.approx(20.0)
    # Holm over the table's two tests: p = 1/32 and 1/2 → 2·(1/32) = 0.0625 and max(0.0625, 0.5) = 0.5.
    assert tables["tiny|output-sum"]["p_holm"] == pytest.approx(0.0625)
    assert tables["tiny|base"]["p_holm"] == pytest.approx(0.5)
    assert tables["tiny|single:imdb"]["p_holm"] is None
    assert "| output-sum | tiny | 0.833 [" in md and "| +0.500 [" in md
    assert "| single:imdb (baseline) | tiny | 0.333 [" in md
    assert "| base | tiny | 0.167 [" in md and "| -0.167 [" in md
    # Perplexity exp(Σ NLL / Σ tokens) = 20; distinct-2 per prompt: two texts of 5 bigrams share one → 9/10.
    assert "| 20.0 | 0.900 | 12 |" in md
    # Headline: output-sum vs single:imdb on IMDb's held-out prompts, one test: p = 1/32, significant.
    headline = md.split("## Headline")[1].split("##")[0]
    assert "| tiny | positive | heldout:imdb | imdb | 0.333 [" in headline and "| +0.500 [" in headline
    assert "| 0.031 | 0.031 | ▲ | 12 |" in headline
    assert "test machine" in md and "| 10 min 0 s | train 1 |" in md
    for plot in ("accuracy-sentiment-positive-tiny.png", "perplexity-sentiment-tiny.png", "heatmap-multi-tiny.png"):
        assert (tmp_path / "report" / plot).stat().st_size > 1000
    multi = json.loads(paths["tables"].read_text())["multi|pplm|positive+sport"]
    assert multi["tiny|output-sum"]["hard"] == pytest.approx(10 / 12)  # sentiment and topic both hit
    page = paths["html"].read_text()
    assert "data:image/png;base64," in page and "<td>0.833 [" in page


def test_results_and_report_commands(db, tmp_path, capsys):
    assert main(["results", "--db", str(db), "--condition", "output-sum"]) == 0
    out = capsys.readouterr().out
    assert "output-sum" in out and "0.833" in out and "single:imdb" not in out
    assert main(["report", "--db", str(db), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.md").is_file()
    assert main(["report", "--db", str(tmp_path / "missing.sqlite")]) == 2
    assert main(["report", "--db", str(db), "--experiment", "other"]) == 2
    assert "no experiment 'other'" in capsys.readouterr().err


def test_report_shows_both_directions_and_their_mean(tmp_path):
    path = tmp_path / "results.sqlite"
    positive = {"base": HITS["base"], "output-sum": HITS["output-sum"]}
    negative = {"base": [1 - h for h in HITS["base"]], "output-sum": [1] * 12}  # base: each text voted one way
    with Store(path) as store:
        run = store.start_run("dirs", "name: dirs\n", "inprocess", "m", "2026-01-01T00:00:00", "log")
        for target, table in (("positive", positive), ("negative", negative)):
            for condition, hits in table.items():
                store.put({"experiment": "dirs", "model": "tiny", "task": "sentiment", "prompt_set": "pplm35",
                           "condition": condition, "target": target, "seed": 0, "generate_key": "g",
                           "evaluate_key": condition + target, "metrics": metrics(hits)}, run)
        store.finish_run(run, "2026-01-01T00:10:00", 600.0, "done", 4, {})
        paths = write_report(store, "dirs", tmp_path / "report")
    md = paths["markdown"].read_text()
    section = md.split("### sentiment, both directions, prompts pplm35")[1].split("###")[0]
    assert "| condition | model | toward positive | toward negative | mean | n |" in section
    assert "| base | tiny | 0.167 [" in section and "| 0.500 [0.500, 0.500] | 24 |" in section
    assert "| output-sum | tiny | 0.833 [" in section and "| 1.000 [1.000, 1.000] | 0.917 [" in section
    cells = json.loads(paths["tables"].read_text())["directions|sentiment|pplm35"]
    assert cells["tiny|output-sum"]["mean"] == pytest.approx((10 / 12 + 1) / 2)
    assert cells["tiny|base"]["mean_ci"] == pytest.approx([0.5, 0.5])


def test_soft_accuracy_over_two_attributes_is_one_interval_of_the_joint_mean(tmp_path):
    """Two attributes whose soft scores cancel on every sample: each sample's mean over attributes is 0.5,
    so every bootstrap resample's mean is 0.5 and the interval is [0.5, 0.5]. Each attribute alone varies
    from prompt to prompt (wide intervals), and averaging those intervals' ends gave a wide, wrong one."""
    m = metrics(HITS["output-sum"])
    m["provenance"] = {"bootstrap": {"resamples": 500, "confidence": 0.95, "seed": 0}}
    for i, s in enumerate(m["samples"]):
        s["hits"]["topic"] = True
        s["soft"] = {"sentiment": 0.9 if i % 4 < 2 else 0.1, "topic": 0.1 if i % 4 < 2 else 0.9}
    m["attributes"]["sentiment"]["soft_accuracy"] = {"value": 0.5, "ci": [0.2, 0.8]}
    m["attributes"]["topic"] = {"target": "sport", "hard_accuracy": {"value": 1.0, "ci": [1, 1]},
                                "soft_accuracy": {"value": 0.5, "ci": [0.3, 0.9]}, "judge_panel": "p"}
    with Store(tmp_path / "results.sqlite") as store:
        store.put({"experiment": "joint", "model": "tiny", "task": "multi", "prompt_set": "pplm",
                   "condition": "output-sum", "target": "positive+sport", "seed": 0, "generate_key": "g",
                   "evaluate_key": "e", "metrics": m})
        (row,) = store.results(experiment="joint")
    assert (row["soft"], row["soft_low"], row["soft_high"]) == pytest.approx((0.5, 0.5, 0.5))
    # The single attribute's figures stay the evaluation's own.
    assert json.loads(row["attributes"])["topic"]["soft"] == {"value": 0.5, "ci": [0.3, 0.9]}


def test_report_prints_the_code_version_of_each_run(db, tmp_path):
    with Store(db) as store:
        run = store.start_run("known", "name: known\n", "inprocess", "m", "2026-01-02T00:00:00", "log",
                              commit="0123abc+local-changes")
        store.finish_run(run, "2026-01-02T00:01:00", 60.0, "done", 3, {})
        md = write_report(store, "known", tmp_path / "report")["markdown"].read_text()
    assert "code 0123abc+local-changes." in md  # the latest run
    assert "| 10 min 0 s | train 1 | unknown (" in md
    assert "| 1 min 0 s | none (all cached) | 0123abc+local-changes |" in md


def test_headline_on_shared_prompts_tests_output_sum_against_every_single_module(tmp_path):
    """On a prompt set every module shares (the authors' pplm35), output-sum is tested against each
    single-dataset module, one Holm family; the per-target table's baseline is the best single module;
    perplexity measured on a subset says on how many texts."""
    hits = {"single:imdb": HITS["single:imdb"], "single:tweets": [1] * 6 + [0] * 6, "output-sum": HITS["output-sum"]}
    with Store(tmp_path / "results.sqlite") as store:
        run = store.start_run("shared", "name: shared\n", "inprocess", "m", "2026-01-01T00:00:00", "log")
        for condition, row in hits.items():
            m = metrics(row)
            for s in m["samples"]:
                if s["sample"] != 0:  # evaluate.perplexity_samples: 1
                    del s["nll"], s["tokens"]
            store.put({"experiment": "shared", "model": "tiny", "task": "sentiment", "prompt_set": "pplm35",
                       "condition": condition, "target": "positive", "seed": 0, "generate_key": "g",
                       "evaluate_key": condition, "metrics": m}, run)
        store.finish_run(run, "2026-01-01T00:10:00", 600.0, "done", 3, {})
        paths = write_report(store, "shared", tmp_path / "report")
    md = paths["markdown"].read_text()
    headline = md.split("## Headline")[1].split("\n## ")[0]
    # vs imdb: 6 discordant pairs, all won → p = 2/2^6; vs tweets: 4, all won → p = 2/2^4 = 0.125.
    # Holm: 2 · 1/32 = 0.0625, then max(0.0625, 0.125) = 0.125; neither below 0.05.
    assert "| tiny | positive | pplm35 | imdb | 0.333 [" in headline and "| 0.031 | 0.062 | = | 12 |" in headline
    assert "| tiny | positive | pplm35 | tweets | 0.500 [" in headline and "| 0.125 | 0.125 | = | 12 |" in headline
    assert "Per direction, output-sum scores above the single-dataset module in 2 of 2 comparisons" in headline
    assert "significantly better in 0" in headline and "| tiny | both (mean)" not in headline  # one direction
    assert "| single:tweets (baseline) | tiny | 0.500 [" in md  # the best single module
    assert "| 20.0 (n=6) | 0.900 | 12 |" in md  # perplexity of sample 0 of each prompt only
    study = md.split("the study's layout")[1].split("\n## ")[0]
    assert "| condition | tiny positive | tiny negative | tiny mean | tiny ppl | tiny dist-2 |" in study
    assert "| output-sum | 83.3 | – | – | 20.0 | 0.900 |" in study


def test_headline_pools_both_directions_into_the_studys_mean(tmp_path):
    """With both directions on the same prompts, a 'both (mean)' row pairs each direction's samples with
    the same direction's: its Δ is the mean of the two directions' Δ, over twice the pairs."""
    negative = {"single:imdb": [1] * 6 + [0] * 6, "output-sum": [1] * 12}
    with Store(tmp_path / "results.sqlite") as store:
        run = store.start_run("both", "name: both\n", "inprocess", "m", "2026-01-01T00:00:00", "log")
        for target, table in (("positive", {c: HITS[c] for c in ("single:imdb", "output-sum")}),
                              ("negative", negative)):
            for condition, hits in table.items():
                store.put({"experiment": "both", "model": "tiny", "task": "sentiment", "prompt_set": "pplm35",
                           "condition": condition, "target": target, "seed": 0, "generate_key": "g",
                           "evaluate_key": condition + target, "metrics": metrics(hits)}, run)
        store.finish_run(run, "2026-01-01T00:10:00", 600.0, "done", 4, {})
        md = write_report(store, "both", tmp_path / "report")["markdown"].read_text()
    headline = md.split("## Headline")[1].split("\n## ")[0]
    rows = [line for line in headline.splitlines() if line.startswith("| tiny |")]
    assert [r.split(" | ")[1] for r in rows] == ["positive", "negative", "both (mean)"]
    # positive: 0.333 → 0.833 (Δ +0.5, 6 discordant pairs); negative: 0.5 → 1.0 (Δ +0.5, 6 discordant)
    # both: 12 discordant pairs, all won → p = 2/2^12
    assert "| tiny | both (mean) | pplm35 | imdb | 0.417 [" in rows[2]
    assert "| +0.500 [" in rows[2] and "| 0.00049 |" in rows[2] and rows[2].endswith("| 24 |")
    assert "On both (mean), output-sum scores above the single-dataset module in 1 of 1" in headline
    assert "![Δ hard accuracy, output-sum minus each single-dataset module, tiny" in headline
    assert (tmp_path / "report" / "headline-tiny.png").stat().st_size > 1000


def test_distinct_2_is_measured_on_the_same_samples_per_prompt_in_every_condition(tmp_path):
    """A condition with twice the samples per prompt would score a lower distinct-2 for having more text:
    here output-sum's sample 1 repeats its sample 0 (distinct-2 0.5 over both), and the other condition has
    sample 0 only, so both are measured on sample 0 (distinct-2 1.0)."""
    summed = metrics(HITS["output-sum"])
    for s in summed["samples"]:
        s["text"] = f" words {s['prompt']} and more text"  # the same text for samples 0 and 1
    one = metrics(HITS["single:imdb"][::2])
    for i, s in enumerate(one["samples"]):
        s["prompt"], s["sample"] = PROMPTS[i], 0
    with Store(tmp_path / "results.sqlite") as store:
        for condition, m in (("output-sum", summed), ("single:imdb", one)):
            store.put({"experiment": "d2", "model": "tiny", "task": "sentiment", "prompt_set": "pplm35",
                       "condition": condition, "target": "positive", "seed": 0, "generate_key": "g",
                       "evaluate_key": condition, "metrics": m})
        md = write_report(store, "d2", tmp_path / "report")["markdown"].read_text()
    assert "Conditions have 1, 2 samples per prompt and seed; distinct-2 is measured on the first 1" in md
    table = md.split("### sentiment → positive")[1].split("###")[0]
    assert "| output-sum | tiny | 0.833 [" in table and "| 1.000 | 12 |" in table


def test_a_run_still_going_is_reported_as_started_not_finished(tmp_path):
    with Store(tmp_path / "results.sqlite") as store:
        run = store.start_run("going", "name: going\n", "inprocess", "m", "2026-01-03T00:00:00", "log")
        store.put({"experiment": "going", "model": "tiny", "task": "sentiment", "prompt_set": "pplm35",
                   "condition": "base", "target": "positive", "seed": 0, "generate_key": "g",
                   "evaluate_key": "e", "metrics": metrics(HITS["base"])}, run)
        md = write_report(store, "going", tmp_path / "report")["markdown"].read_text()
    assert "Latest run started 2026-01-03T00:00:00, running (UTC) on m" in md and "finished 2026" not in md


def test_models_follow_the_specs_order_and_examples_the_task_sets_order(tmp_path):
    """The database sorts 'big-model' before 'small-model'; the spec ran the small one first, and the
    report lists models in the spec's order everywhere, examples included, sentiment before multi."""
    with Store(tmp_path / "results.sqlite") as store:
        run = store.start_run("order", "name: order\nmodels: [small-model, big-model]\n", "inprocess", "m",
                              "2026-01-01T00:00:00", "log")
        for model in ("big-model", "small-model"):
            for task, target in (("multi", "positive+sport"), ("sentiment", "positive")):
                m = metrics(HITS["output-sum"])
                if task == "multi":
                    for s in m["samples"]:
                        s["hits"]["topic"], s["soft"]["topic"] = True, 0.8
                store.put({"experiment": "order", "model": model, "task": task, "prompt_set": "pplm35",
                           "condition": "output-sum", "target": target, "seed": 0, "generate_key": "g",
                           "evaluate_key": model + task, "metrics": m}, run)
        store.finish_run(run, "2026-01-01T00:10:00", 600.0, "done", 4, {})
        md = write_report(store, "order", tmp_path / "report")["markdown"].read_text()
    table = md.split("### sentiment → positive")[1].split("###")[0]
    assert table.index("| small-model |") < table.index("| big-model |")
    examples = [line for line in md.split("## Example generations")[1].splitlines() if line.startswith("### ")]
    assert examples == ["### sentiment → positive, output-sum (small-model, prompts pplm35)",
                        "### multi → positive+sport, output-sum (small-model, prompts pplm35)",
                        "### sentiment → positive, output-sum (big-model, prompts pplm35)",
                        "### multi → positive+sport, output-sum (big-model, prompts pplm35)"]
