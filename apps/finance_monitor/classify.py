"""Label a file of texts with a trained classifier (``aigc finance classify``).

Input: CSV / TSV (a header, a text column; CRLF and newlines inside quotes are fine), Parquet,
JSON Lines, or plain text (one text per line). The text column is ``--text-column`` or the first
of ``text``, ``title``, ``headline``, ``sentence``. Output (by extension: ``.csv``, ``.jsonl``,
``.parquet``): the input columns plus, for each head, ``<head>`` and ``<head>_confidence``
(calibrated). The output is written to a temporary file and renamed, so it is complete or absent.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from apps.finance_monitor.errors import DataError, decode_bytes, jsonl_objects
from apps.finance_monitor.sentiment import head_probabilities, load_model
from core.errors import check_path_kind

logger = logging.getLogger(__name__)

TEXT_COLUMNS: tuple[str, ...] = ("text", "title", "headline", "sentence")
OUTPUT_FORMATS: tuple[str, ...] = (".csv", ".jsonl", ".parquet")


def read_texts(path: str | Path, text_column: str | None = None) -> tuple[pd.DataFrame, str]:
    """Read the rows to classify and pick the text column.

    Returns:
        ``(frame, text_column)``; every cell of other columns is kept as read.

    Raises:
        FileNotFoundError: No such file.
        DataError: Unreadable file, missing text column, or an empty text (naming file, row, field).
    """
    path = check_path_kind(path, "file")
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in (".jsonl", ".ndjson"):  # parsed line by line, so an error names its row and line
            records = jsonl_objects(path, decode_bytes(path.read_bytes(), path, "utf-8"))
            frame = pd.DataFrame([obj for _, _, obj in records])
        elif suffix == ".txt":
            lines = path.read_text(encoding="utf-8").replace("\r\n", "\n").split("\n")
            frame = pd.DataFrame({"text": [line for line in lines if line.strip()]})
        else:
            sep = "\t" if suffix == ".tsv" else ","
            frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8")
    except DataError:
        raise
    except UnicodeDecodeError as err:
        raise DataError(path, f"not UTF-8 ({err.reason} at byte {err.start}); re-save it as UTF-8") from err
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise DataError(path, f"cannot read the file: {err}") from err
    if frame.empty:
        raise DataError(path, "no rows to classify (the file holds a header or nothing); nothing was written")
    column = text_column or next((c for c in TEXT_COLUMNS if c in frame.columns), None)
    if column is None or column not in frame.columns:
        wanted = text_column or " / ".join(TEXT_COLUMNS)
        raise DataError(path, f"no text column {wanted!r}; columns are {list(frame.columns)}", field=wanted)
    texts = frame[column]
    for i, value in enumerate(texts, start=1):
        if not isinstance(value, str) or not value.strip():
            raise DataError(path, "empty text (every row needs one)", row=i, field=column)
    return frame, column


def classify_file(
    model_dir: str | Path,
    input_path: str | Path,
    out_path: str | Path,
    *,
    text_column: str | None = None,
    batch_size: int = 64,
    show_progress_bar: bool = True,
) -> int:
    """Label every row of ``input_path`` with every head of the model and write ``out_path``.

    Returns:
        The number of rows written.

    Raises:
        FileNotFoundError, ValueError: Missing input or a missing / corrupt model directory.
        DataError: Bad input rows.
    """
    out_path = Path(out_path)
    if out_path.suffix.lower() not in OUTPUT_FORMATS:
        raise ValueError(f"output {out_path}: use one of the extensions {list(OUTPUT_FORMATS)}")
    if out_path.is_dir():
        raise ValueError(f"output {out_path} is a folder; --out must be a file path")
    frame, column = read_texts(input_path, text_column)  # bad input fails before the model loads
    model = load_model(model_dir)
    texts = frame[column].tolist()
    chunk = batch_size * 8
    results: dict[str, list] = {h: [] for h in model.head_names}
    confidences: dict[str, list[float]] = {h: [] for h in model.head_names}
    with tqdm(total=len(texts), desc="Classifying", unit="text", disable=not show_progress_bar) as bar:
        for start in range(0, len(texts), chunk):
            probs = head_probabilities(model, texts[start : start + chunk], batch_size)
            for head, p in probs.items():
                labels = model.labels(head)
                results[head] += [labels[i] for i in p.argmax(axis=1)]
                confidences[head] += [round(float(v), 5) for v in p.max(axis=1)]
            bar.update(min(chunk, len(texts) - start))
    out = frame.copy()
    for head in model.head_names:
        out[head] = results[head]
        out[f"{head}_confidence"] = confidences[head]
    write_frame_atomic(out, out_path)
    logger.info(
        "Classified file", extra={"input": str(input_path), "output": str(out_path), "rows": len(out)}
    )
    return len(out)


def write_frame_atomic(frame: pd.DataFrame, path: str | Path) -> None:
    """Write ``frame`` as CSV / JSON Lines / Parquet (by extension) via a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        elif suffix == ".jsonl":
            frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
        else:
            frame.to_csv(tmp, index=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
