"""Training data size limits: one huge text cell is refused with a message before anything tokenises it."""

from __future__ import annotations

import pandas as pd
import pytest

from loracompose.data.userfiles import MAX_TEXT_CHARS, read_user_file
from loracompose.errors import LoraComposeError


def test_a_huge_text_or_label_is_refused_before_tokenising(tmp_path, labelled_frame):
    frame = labelled_frame.copy()
    frame.loc[5, "review"] = "word " * 2_000_000  # 10 MB in one cell
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(LoraComposeError, match=rf"data file '.*big.csv' row 6 has a text of 10000000 characters; at "
                                               rf"most {MAX_TEXT_CHARS} are accepted \(split long documents"):
        read_user_file(path, "review", "stars")
    frame = labelled_frame.copy()
    frame.loc[2, "stars"] = "x" * 10_000
    frame.to_json(tmp_path / "label.jsonl", orient="records", lines=True)
    with pytest.raises(LoraComposeError, match="row 3 has a label of 10000 characters; at most 200"):
        read_user_file(tmp_path / "label.jsonl", "review", "stars")
    ok = read_user_file(_write(tmp_path, labelled_frame), "review", "stars")
    assert isinstance(ok, pd.DataFrame) and len(ok) == len(labelled_frame)


def _write(tmp_path, frame):
    path = tmp_path / "ok.csv"
    frame.to_csv(path, index=False)
    return path
