"""Plain functions behind the recommender pages (no Streamlit here, so tests call them directly)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from core.console import one_line

logger = logging.getLogger(__name__)

METRICS = ("hr@10", "ndcg@10", "recall@50", "mrr", "coverage")
HISTORY_COLUMNS = ["when", "title", "item_id", "event", "rating"]


def data_root() -> Path:
    """``<data dir>/recommend``: the demo model, its batch output and ``eval.json``."""
    from core.paths import data_dir

    return data_dir() / "recommend"


def model_fingerprint(path: Path) -> str:
    """Changes whenever the model is saved again (cache key of the loaded model)."""
    manifest = path / "manifest.json"
    return f"{manifest.stat().st_mtime_ns}" if manifest.is_file() else "missing"


def history_table(model: Any, user_id: str, limit: int = 20) -> pd.DataFrame:
    """The user's most recent ``limit`` training interactions, newest first."""
    frame = model.history(user_id).tail(limit).iloc[::-1]
    when = [datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%d") for t in frame["timestamp"]]
    out = frame.assign(when=when)
    out["rating"] = out["rating"].map(lambda r: "" if pd.isna(r) else f"{r:g}")
    return out.loc[:, HISTORY_COLUMNS].reset_index(drop=True)


def recommendation_table(model: Any, user_id: str, k: int) -> pd.DataFrame:
    """Top-``k`` for one user with titles: ``rank``, ``title``, ``item_id``, ``score``, ``reason``."""
    frame = model.recommend_frame([user_id], k)
    titles = _titles(model)
    frame = frame.assign(title=frame["item_id"].map(titles), score=frame["score"].round(3))
    return frame.loc[:, ["rank", "title", "item_id", "score", "reason"]].reset_index(drop=True)


def batch_summary(path: Path) -> dict[str, Any] | None:
    """Rows, users and distinct items of a batch output file (``None`` when absent)."""
    if not path.is_file():
        return None
    frame = _read_batch(path, columns=["user_id", "item_id"])
    return {
        "rows": len(frame),
        "users": int(frame["user_id"].nunique()),
        "items": int(frame["item_id"].nunique()),
        "modified": datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def batch_rows(path: Path, model: Any, user_id: str) -> pd.DataFrame:
    """One user's rows of a batch output file, with titles (same columns as the live table)."""
    frame = _read_batch(path, user_id=user_id)
    frame = frame.assign(
        title=frame["item_id"].astype(str).map(_titles(model)), score=frame["score"].round(3)
    )
    return frame.loc[:, ["rank", "title", "item_id", "score", "reason"]].reset_index(drop=True)


def _read_batch(path: Path, columns: list[str] | None = None, user_id: str | None = None) -> pd.DataFrame:
    """Rows of a batch output file (CSV or Parquet).

    Raises:
        ValueError: The file is not a batch output: unreadable, not UTF-8, empty, or a column missing
            (one line naming the file and the column).
    """
    try:
        if path.suffix.lower() == ".csv":
            frame = pd.read_csv(
                path, dtype={"user_id": str, "item_id": str}, keep_default_na=False, encoding="utf-8"
            )
        else:
            filters = None if user_id is None else [("user_id", "==", user_id)]
            frame = pd.read_parquet(path, filters=filters)
    except (
        ValueError,
        OSError,
    ) as err:  # pandas' ParserError, UnicodeDecodeError and pyarrow's are ValueErrors
        raise ValueError(
            f"{path}: not a batch output of `aigc recommend score` ({one_line(err)[:200]})"
        ) from None
    from apps.recommender.model import OUTPUT_COLUMNS  # the columns `aigc recommend score` writes

    wanted = list(columns) if columns is not None else list(OUTPUT_COLUMNS)
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: column {missing[0]!r} is missing; found {list(frame.columns)[:10]}")
    frame = frame if user_id is None else frame[frame["user_id"].astype(str) == user_id]
    return frame if columns is None else frame[columns]


def similar_table(model: Any, item_id: str, k: int) -> pd.DataFrame:
    """Nearest items by text vector: ``title``, ``item_id``, ``similarity``."""
    frame = model.similar_items(item_id, k)
    return pd.DataFrame(
        {"title": frame["title"], "item_id": frame["item_id"], "similarity": frame["score"].round(3)}
    )


def item_labels(model: Any) -> dict[str, str]:
    """``item_id -> "item_id: title"`` for pickers."""
    titles = _titles(model)
    return {item: f"{item}: {titles.get(item, '')}" for item in model.items["item_id"].astype(str)}


def _titles(model: Any) -> pd.Series:
    items = model.items.set_index(model.items["item_id"].astype(str))
    return items["title" if "title" in items.columns else "text"].astype(str)


def load_eval(path: Path) -> dict[str, Any] | None:
    """An evaluation report (``aigc recommend eval --json``) or ``None`` when the file is absent.

    Raises:
        ValueError: The file is not an evaluation report.
    """
    if not path.is_file():
        return None
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(report, dict) or not isinstance(report.get("models"), dict):
        raise ValueError(f"{path}: no 'models' section; expected the output of `aigc recommend eval --json`")
    _check_eval_shape(path, report)
    return report


def _check_eval_shape(path: Path, report: dict[str, Any]) -> None:
    """Refuse a report whose parts the page reads have the wrong shape (one line naming the key)."""

    def bad(key: str, expected: str) -> ValueError:
        return ValueError(
            f"{path}: {key!r} must be {expected}; expected the output of `aigc recommend eval --json`"
        )

    def check_models(models: Any, key: str, shown: Any) -> None:
        for name, values in models.items():
            if not isinstance(values, dict):
                raise bad(f"{key}.{name}", "an object of metrics")
            for metric in shown(values):  # the metrics the page charts (others may be anything)
                value = values.get(metric)
                if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                    raise bad(f"{key}.{name}.{metric}", "a number")

    check_models(report["models"], "models", lambda _values: METRICS)
    for key in ("protocol", "cold_start"):
        if key in report and not isinstance(report[key], dict):
            raise bad(key, "an object")
    if not isinstance(report.get("protocol", {}).get("dataset", {}), dict):
        raise bad("protocol.dataset", "an object")
    cold = report.get("cold_start", {}).get("models")
    if cold is not None:
        if not isinstance(cold, dict):
            raise bad("cold_start.models", "an object")
        check_models(cold, "cold_start.models", lambda values: [m for m in values if m != "n_users"])


def metrics_table(report: dict[str, Any]) -> pd.DataFrame:
    """Models x :data:`METRICS` (rounded), models in report order."""
    rows = {name: {m: values.get(m) for m in METRICS} for name, values in report["models"].items()}
    return pd.DataFrame.from_dict(rows, orient="index").astype(float).round(4)


def cold_table(report: dict[str, Any]) -> pd.DataFrame | None:
    """Models x cold-start metrics, or ``None`` when the report has no cold-start section."""
    section = report.get("cold_start")
    if not isinstance(section, dict) or not section.get("models"):
        return None
    rows = {
        name: {m: v for m, v in values.items() if m != "n_users"}
        for name, values in section["models"].items()
    }
    return pd.DataFrame.from_dict(rows, orient="index").astype(float).round(4)


def metric_chart(table: pd.DataFrame) -> Any:
    """Grouped bars (Altair): one group per model, in the table's order, one bar per metric."""
    import altair as alt

    long = table.rename_axis("model").reset_index().melt("model", var_name="metric", value_name="value")
    return (
        alt.Chart(long)
        .mark_bar()
        .encode(
            x=alt.X("model:N", sort=list(table.index), title=None, axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("metric:N", sort=list(table.columns)),
            y=alt.Y("value:Q", title=None),
            color=alt.Color("metric:N", sort=list(table.columns), title="metric"),
            tooltip=["model", "metric", alt.Tooltip("value:Q", format=".4f")],
        )
        .properties(height=280)
    )


def sample_report() -> dict[str, Any]:
    """The evaluation protocol on the shipped sample with frozen MiniLM vectors (slow: ~30 s)."""
    from apps.recommender.demo import ENCODER, SAMPLE_DIR, evaluate_sample
    from apps.recommender.public_datasets import load_folder
    from apps.recommender.text_vectors import embed_items
    from core.embeddings import Embedder

    dataset = load_folder(SAMPLE_DIR)
    return evaluate_sample(dataset, embed_items(dataset, Embedder(ENCODER)))
