"""The blind read: the sheet hides the conditions; reveal checks the sheet and counts each condition's shares."""

import csv
import io
import json

import pytest

from loracompose import LoraComposeError
from loracompose.cli import main
from loracompose.evaluate.blind import Source, draw, reveal


def write_generations(path, direction, n=6):
    rows = [{"prompt": f"Prompt {i % 3}", "text": f" text {direction} {i}", "seed": 1, "sample": i,
             **({"versus": {"direction": direction}} if direction else {})} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture()
def drawn(tmp_path):
    sources = [Source("pos", write_generations(tmp_path / "pos.jsonl", "positive"), {}),
               Source("neg", write_generations(tmp_path / "neg.jsonl", "negative"), {}),
               Source("base", write_generations(tmp_path / "base.jsonl", None), {})]
    sheet = draw(sources, 4, tmp_path / "blind", seed=3)
    return tmp_path / "blind", sheet


def rows_of(sheet):
    return list(csv.DictReader(io.StringIO(sheet.read_text())))


def fill(rows, label):
    """A reader who reads 'positive' into every text containing 'positive', and coherent iff even index."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, **label(row)})
    return out.getvalue()


def test_the_sheet_hides_the_conditions(drawn):
    directory, sheet = drawn
    rows = rows_of(sheet)
    assert len(rows) == 12 and set(rows[0]) == {"id", "prompt", "continuation", "sentiment", "coherent"}
    assert all(r["sentiment"] == r["coherent"] == "" for r in rows)
    assert "pos" not in sheet.read_text().split("\n")[0] and "key.json" not in sheet.read_text()
    order = [r["continuation"].split()[1] for r in rows]
    assert order != sorted(order)  # shuffled across conditions
    assert (directory / "instructions.md").is_file()


def test_reveal_counts_each_condition(drawn, tmp_path):
    directory, sheet = drawn
    rows = rows_of(sheet)
    filled = tmp_path / "filled.csv"
    filled.write_text(fill(rows, lambda r: {"sentiment": "positive" if "positive" in r["continuation"] else "neutral",
                                            "coherent": "yes" if int(r["continuation"].split()[-1]) % 2 == 0 else "no"}))
    record = reveal(directory, filled, "a test")
    by = {c["condition"]: c for c in record["conditions"]}
    assert by["pos"]["on_target"]["value"] == 1.0 and by["neg"]["on_target"]["value"] == 0.0
    assert by["base"]["positive"]["on_target"]["value"] == 0.0 and by["base"]["target"] is None
    key = json.loads((directory / "key.json").read_text())
    for name, entry in by.items():
        ids = [i for i, item in key["items"].items() if item["condition"] == name]
        drawn_rows = [r for r in rows if r["id"] in ids]
        even = sum(int(r["continuation"].split()[-1]) % 2 == 0 for r in drawn_rows)
        assert entry["coherent"]["value"] == pytest.approx(even / len(ids)) and entry["n"] == 4
    assert json.loads((directory / "results.json").read_text())["reader"] == "a test"


@pytest.mark.parametrize("edit, message", [
    (lambda rows: rows[0].update(id="deadbeef"), "was not drawn"),
    (lambda rows: rows[0].update(continuation=" something else"), "differs from the text that was drawn"),
    (lambda rows: rows[0].update(sentiment="happy"), "not allowed; sentiment: positive, negative, neutral"),
    (lambda rows: rows[1].update(coherent="maybe"), "coherent: yes, no"),
    (lambda rows: rows.pop(), "lacks 1 of the 12 drawn texts"),
])
def test_a_bad_sheet_is_refused_and_nothing_written(drawn, tmp_path, edit, message):
    directory, sheet = drawn
    rows = [{**r, "sentiment": "neutral", "coherent": "yes"} for r in rows_of(sheet)]
    edit(rows)
    filled = tmp_path / "filled.csv"
    filled.write_text(fill(rows, lambda r: {}))
    with pytest.raises(LoraComposeError, match=message):
        reveal(directory, filled, "a test")
    assert not (directory / "results.json").exists()


def test_cli_draw_and_reveal(tmp_path, capsys):
    write_generations(tmp_path / "pos.jsonl", "positive")
    assert main(["blind", "draw", "--file", f"pos={tmp_path / 'pos.jsonl'}", "--per-condition", "3",
                 "--out", str(tmp_path / "b")]) == 0
    rows = rows_of(tmp_path / "b" / "sheet.csv")
    (tmp_path / "f.csv").write_text(fill(rows, lambda r: {"sentiment": "positive", "coherent": "yes"}))
    assert main(["blind", "reveal", str(tmp_path / "b"), "--sheet", str(tmp_path / "f.csv"), "--reader", "me"]) == 0
    assert "1.00" in capsys.readouterr().out
    assert main(["blind", "draw", "--file", "x=/nonexistent.jsonl", "--out", str(tmp_path / "c")]) != 0
    assert "must be NAME=PATH with an existing generations file" in capsys.readouterr().err
