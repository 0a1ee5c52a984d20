"""User data: JSONL, CSV or Parquet files, or a directory saved with Hugging Face `datasets`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from loracompose.errors import LoraComposeError

FILE_FORMATS = (".jsonl", ".json", ".csv", ".parquet")
MAX_TEXT_CHARS = 200_000  # one text (a long article is ~50k); longer ones are refused before tokenising
MAX_LABEL_CHARS = 200


def _read_any(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if path.is_dir():
            import datasets

            loaded = datasets.load_from_disk(str(path))
            # A DatasetDict's own splits are pooled: loracompose makes its own deterministic split.
            parts = loaded.values() if isinstance(loaded, datasets.DatasetDict) else [loaded]
            return pd.concat([part.to_pandas() for part in parts], ignore_index=True)
        if suffix in (".jsonl", ".json"):
            return pd.read_json(path, lines=suffix == ".jsonl")
        if suffix == ".csv":
            return pd.read_csv(path, encoding="utf-8", encoding_errors="replace")
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except LoraComposeError:
        raise
    except Exception as exc:  # a parser's own message is the most precise description of the fault
        raise LoraComposeError(f"could not read data file '{path}': {type(exc).__name__}: {exc}") from exc
    raise LoraComposeError(
        f"data file '{path}' has an unsupported format '{suffix}'; accepted: "
        f"{', '.join(FILE_FORMATS)}, or a directory saved with datasets.save_to_disk"
    )


def read_user_file(path: Path, text_column: str = "text", label_column: str = "label") -> pd.DataFrame:
    """Read a user's labelled texts into a frame with columns `text` and `label`."""
    if not path.exists():
        raise LoraComposeError(f"data file '{path}' does not exist")
    frame = _read_any(path)
    if frame.empty:
        raise LoraComposeError(f"data file '{path}' is empty; it needs rows with a text and a label")
    missing = [c for c in (text_column, label_column) if c not in frame.columns]
    if missing:
        raise LoraComposeError(
            f"data file '{path}' lacks the column(s) {', '.join(repr(c) for c in missing)}; "
            f"its columns are {', '.join(repr(str(c)) for c in frame.columns)} "
            "(choose others with --text-column / --label-column)"
        )
    frame = frame[[text_column, label_column]].dropna()
    frame = pd.DataFrame({"text": frame[text_column].astype(str), "label": frame[label_column].astype(str)})
    # Bounded before anything tokenises them: one 50 MB text once took 6 GB of memory.
    for column, most, advice in (("text", MAX_TEXT_CHARS, "split long documents into several rows"),
                                 ("label", MAX_LABEL_CHARS, "a label is a short name such as 'positive'")):
        lengths = frame[column].str.len()
        if len(lengths) and lengths.max() > most:
            row = lengths.idxmax()
            raise LoraComposeError(f"data file '{path}' row {row + 1 if isinstance(row, int) else row} has a "
                                   f"{column} of {lengths[row]} characters; at most {most} are accepted ({advice})")
    return frame
