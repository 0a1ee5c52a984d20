"""No import cycle among loracompose's modules (scripts/import_graph.py, read with ast)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import import_graph  # noqa: E402


def test_src_has_no_import_cycle():
    graph = import_graph.build()
    assert "loracompose.experiments.spec" in graph.modules and len(graph.modules) > 50
    assert graph.cycles() == []  # module level: what runs at import time
    assert graph.all_cycles() == []  # with function-local imports too: no tangled layers


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in {"__init__.py": "", **files}.items():
        path = root / "loracompose" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_finds_a_known_cycle_and_tells_module_level_from_local(tmp_path):
    source = _package(tmp_path, {
        "a.py": "from loracompose.b import x\n",
        "b.py": "from loracompose import c\nx = 1\n",
        "c.py": "import loracompose.a\n",  # a → b → c → a: a module-level cycle
        "d.py": "def f():\n    from loracompose.e import y\n",
        "e.py": "from loracompose.d import f\ny = 2\n",  # d ↔ e only through a function body
        "f.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from loracompose.g import z\n",
        "g.py": "from . import f\nz = 3\n",  # relative import; f's is for type checkers only
        "sub/__init__.py": "from .h import w\n",
        "sub/h.py": "from ..a import x\nw = 4\n",
    })
    graph = import_graph.build(source)
    assert graph.cycles() == [["loracompose.a", "loracompose.b", "loracompose.c"]]
    assert sorted(graph.all_cycles()) == [["loracompose.a", "loracompose.b", "loracompose.c"],
                                          ["loracompose.d", "loracompose.e"]]
    assert graph.module_level["loracompose.g"] == {"loracompose.f"}
    assert graph.module_level["loracompose.f"] == set()
    assert graph.module_level["loracompose.sub"] == {"loracompose.sub.h"}
    assert graph.module_level["loracompose.sub.h"] == {"loracompose.a"}
    assert graph.local["loracompose.d"] == {"loracompose.e"} and graph.local_count["loracompose.d"] == 1
    assert import_graph.main(["--source", str(source)]) == 1  # a cycle: the script fails
