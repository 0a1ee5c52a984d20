"""User data: JSONL, CSV or Parquet files, or a directory saved with Hugging Face `datasets`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from loracompose.errors import LoraComposeError

FILE_FORMATS = (".jsonl", ".json", ".csv", ".parquet")


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
    return pd.DataFrame({"text": frame[text_column].astype(str), "label": frame[label_column].astype(str)})
