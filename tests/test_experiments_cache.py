"""Stage cache keys cover each stage's code: a code change invalidates that stage and what reads it, no more."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from loracompose.experiments import cache, plan
from loracompose.experiments.spec import parse_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import import_graph  # noqa: E402

CODE_HASH = cache.code_hash  # the real one (lru-cached), whatever a test patches in

SPEC = {"name": "keys", "models": ["smollm2-135m"], "prompts": ["pplm"], "max_prompts": 2,
        "tasks": [{"set": "sentiment", "targets": ["positive"], "datasets": ["rotten_tomatoes", "tweets"],
                   "conditions": ["base", "single", "weights-average"]}]}


@pytest.fixture(autouse=True)
def fresh_code_hashes(monkeypatch):
    """Keys without loading datasets (their content hashes are inputs like any other), and code hashes
    recomputed in each test (they are cached per process)."""
    monkeypatch.setattr(plan, "dataset_hash", lambda name: f"hash-of-{name}")
    CODE_HASH.cache_clear()
    yield
    CODE_HASH.cache_clear()


def keys() -> dict[str, str]:
    """Every key of the plan, by unit: train:<module>, compose:<method>, generate:<condition>, evaluate:<…>."""
    p = plan.build_plan(parse_spec(SPEC))
    return {**{f"train:{u.recipe.name}": u.key for u in p.trains},
            **{f"compose:{u.method}": u.key for u in p.composes},
            **{f"generate:{u.condition}": u.generate_key for u in p.cells},
            **{f"evaluate:{u.condition}": u.key for u in p.cells}}


MERGE = {"compose:weights-average", "generate:weights-average", "evaluate:weights-average"}
SINGLES = {f"{stage}:single:{d}" for stage in ("generate", "evaluate") for d in ("rotten_tomatoes", "tweets")}


@pytest.mark.parametrize("stage, invalidated", [
    ("evaluate", {"evaluate:base", "evaluate:single:rotten_tomatoes", "evaluate:single:tweets",
                  "evaluate:weights-average"}),
    ("generate", {"generate:base", "evaluate:base"} | SINGLES | MERGE - {"compose:weights-average"}),
    ("compose", MERGE),  # the base and single-module cells read no merge
    ("train", {"train:positive@rotten_tomatoes", "train:positive@tweets"} | SINGLES | MERGE),
])
def test_code_change_invalidates_its_stage_and_downstream_only(stage, invalidated, monkeypatch):
    before = keys()
    assert len(before) == 2 + 1 + 4 + 4  # two modules, one merge, four cells (base, two singles, the merge)
    monkeypatch.setitem(cache.STAGE_CODE, stage, (*cache.STAGE_CODE[stage], "loracompose.errors"))  # its code list
    CODE_HASH.cache_clear()
    after = keys()
    assert {unit for unit in before if before[unit] != after[unit]} == invalidated


def test_patched_code_hash_changes_only_its_stage(monkeypatch):
    before = keys()
    monkeypatch.setattr(cache, "code_hash", lambda stage: CODE_HASH(stage) + "edited" * (stage == "evaluate"))
    after = keys()
    assert {unit for unit in before if before[unit] != after[unit]} == {u for u in before if u.startswith("evaluate:")}


def test_code_hash_follows_the_syntax_tree_not_comments(tmp_path, monkeypatch):
    package = tmp_path / "loracompose"
    (package / "sub").mkdir(parents=True)
    source = package / "sub" / "stage.py"
    monkeypatch.setattr(cache, "_PACKAGE", package)
    monkeypatch.setitem(cache.STAGE_CODE, "probe", ("loracompose.sub.stage:work",))

    def probe(text: str) -> str:
        source.write_text(text)
        cache.code_hash.cache_clear()
        return cache.code_hash("probe")

    first = probe("def work(x):\n    return x + 1\n\n\ndef other():\n    return 0\n")
    assert probe("def work(x):  # a comment\n    return x + 1  # more\n\n\ndef other():\n    return 0\n") == first
    assert probe("def work(x):\n    return x + 1\n\n\ndef other():\n    return 99\n") == first  # not listed
    assert probe("def work(x):\n    return x + 2\n\n\ndef other():\n    return 0\n") != first
    with pytest.raises(LookupError, match="defines no top-level work"):
        probe("def renamed(x):\n    return x\n")


def test_every_listed_unit_exists():
    for stage in cache.STAGE_CODE:
        assert len(cache.code_hash(stage)) == 64


def test_stage_code_lists_cover_what_their_modules_import():
    """Each stage's listed library modules, closed over their imports (module level and inside functions),
    stay within the list and the modules that decide no output: a module a stage newly imports must be
    added to STAGE_CODE, or its edits would reuse stale results."""
    graph = import_graph.build()
    for stage, units in cache.STAGE_CODE.items():
        listed = {u for u in units if ":" not in u}
        reached, todo = set(), list(listed)
        while todo:
            module = todo.pop()
            if module not in reached:
                reached.add(module)
                todo += graph.module_level[module] | graph.local[module]
        missing = reached - listed - set(cache.UNCOUNTED)
        assert not missing, f"STAGE_CODE['{stage}'] lacks {sorted(missing)}"
