"""Items and interactions for the recommender: the typed :class:`Dataset`, and reading generic files.

Generic inputs are CSV, TSV, JSON, JSONL or Parquet (chosen by the file extension; read by
:func:`core.io.tables.read_frame`):

* **items**: ``item_id`` (required); text fields, whichever of :attr:`DataConfig.text_fields`
  exist (at least one must); list fields such as ``genres`` and ``tags`` (``|``-separated in
  CSV, lists in Parquet); an optional ``timestamp`` (release or publication time).
* **interactions**: ``user_id``, ``item_id`` and ``timestamp`` (required); optional ``event``
  (``click``, ``purchase``...; default ``interaction``) and ``rating`` (a number).

Timestamps: numbers are epoch seconds, strings are ISO 8601; naive times are taken as UTC.
Values outside 1800-2100 are rejected (epoch milliseconds are the usual cause).

Bad input never gives a silent wrong result. With ``on_error="raise"`` (default) the first
problem raises :class:`~apps.recommender.errors.DataError` naming the file, row and field; with
``on_error="skip"`` every bad row is dropped and a warning gives the counts per field and an
example. Problems checked: missing columns, empty ids, duplicate item ids, items with no text,
unparseable or out-of-range timestamps, non-numeric ratings, interactions whose item is not in
the items file (its own switch, :attr:`DataConfig.unknown_items`). Documented fallbacks that
always apply: exact duplicate interaction rows are dropped, and with ``repeats="first"``
(default) only the first interaction of a user with an item is kept, so the next-item protocol
never asks for an item the user has already seen.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from apps.recommender.cells import (
    RowChecker,
    as_str,
    blank,
    parse_list,
    parse_timestamps,
    timestamp_problem,
)
from apps.recommender.config import DataConfig
from apps.recommender.errors import DataError
from core.io.tables import read_frame

logger = logging.getLogger(__name__)

DEFAULT_EVENT = "interaction"


# ------------------------------------------------------------------------------------- dataset
class Dataset:
    """Items, interactions and the id maps every model shares.

    Item ``i`` is row ``i`` of :attr:`items`; user ``u`` is ``user_ids[u]``. Subsets made with
    :meth:`with_interactions` keep both maps, so scores from a model fit on a training split line
    up with the full catalogue.

    Attributes:
        items: One row per item: ``item_id``, ``text``, the source columns (list fields as lists)
            and ``timestamp`` (nullable ``Int64`` epoch seconds) when the source has one.
        interactions: ``user_id``, ``item_id``, ``user_idx``, ``item_idx`` (int64), ``timestamp``
            (int64 epoch seconds), ``event`` (str), ``rating`` (float, NaN when absent); sorted by
            time, ties in source order.
        user_ids: User id of each user index.
        name: Where the data came from, for logs and reports.
    """

    def __init__(
        self, items: pd.DataFrame, interactions: pd.DataFrame, user_ids: Sequence[str], name: str
    ) -> None:
        self.items = items.reset_index(drop=True)
        self.interactions = interactions.reset_index(drop=True)
        # The reader's attrs (source path, a line number per row) are for its error messages; pandas
        # deep-copies attrs into every column taken from a frame, which made each items["item_id"]
        # copy a list of one int per item (a quarter of the batch job's time on ml-latest-small).
        self.items.attrs = {}
        self.interactions.attrs = {}
        self.user_ids = np.asarray(user_ids, dtype=object)
        self.name = name

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, items={self.n_items}, users={self.n_users}, "
            f"interactions={len(self.interactions)})"
        )

    @property
    def n_items(self) -> int:
        """Number of items in the catalogue (with or without interactions)."""
        return len(self.items)

    @property
    def n_users(self) -> int:
        """Number of users in the user map."""
        return len(self.user_ids)

    @property
    def item_ids(self) -> np.ndarray:
        """Item id of each item index."""
        return self.items["item_id"].to_numpy(dtype=object)

    @property
    def texts(self) -> list[str]:
        """Item texts in item-index order."""
        return self.items["text"].tolist()

    @cached_property
    def item_index(self) -> dict[str, int]:
        """Item id -> item index."""
        return {item_id: i for i, item_id in enumerate(self.items["item_id"])}

    @cached_property
    def user_index(self) -> dict[str, int]:
        """User id -> user index."""
        return {user_id: u for u, user_id in enumerate(self.user_ids)}

    def with_interactions(self, interactions: pd.DataFrame, name: str | None = None) -> Dataset:
        """A dataset with the same items and user map and other interactions (e.g. a split)."""
        return Dataset(self.items, interactions, self.user_ids, name or self.name)

    def user_item_matrix(self, binary: bool = True) -> sparse.csr_matrix:
        """Users x items CSR matrix: 1 per interacted pair (or the interaction count)."""
        frame = self.interactions
        data = np.ones(len(frame), dtype=np.float32)
        matrix = sparse.csr_matrix(
            (data, (frame["user_idx"].to_numpy(), frame["item_idx"].to_numpy())),
            shape=(self.n_users, self.n_items),
        )
        matrix.sum_duplicates()
        if binary:
            matrix.data[:] = 1.0
        return matrix

    def histories(self) -> list[np.ndarray]:
        """Per user index, the item indices interacted with, oldest first (empty when none)."""
        frame = self.interactions
        out = [np.empty(0, dtype=np.int64) for _ in range(self.n_users)]
        if frame.empty:
            return out
        users = frame["user_idx"].to_numpy()
        order = np.argsort(users, kind="stable")  # stable: keeps time order inside each user
        items = frame["item_idx"].to_numpy()[order]
        bounds = np.searchsorted(users[order], np.arange(self.n_users + 1))
        for u in range(self.n_users):
            out[u] = items[bounds[u] : bounds[u + 1]]
        return out

    def item_counts(self) -> np.ndarray:
        """Interactions per item index (int64)."""
        return np.bincount(self.interactions["item_idx"].to_numpy(), minlength=self.n_items)

    def item_first_seen(self) -> np.ndarray:
        """Earliest interaction time per item (float epoch seconds; NaN for items never seen)."""
        first = np.full(self.n_items, np.nan)
        if len(self.interactions):
            grouped = self.interactions.groupby("item_idx")["timestamp"].min()
            first[grouped.index.to_numpy()] = grouped.to_numpy(dtype=float)
        return first

    def summary(self) -> dict[str, Any]:
        """Counts and time range, JSON-serialisable."""
        frame = self.interactions
        active = frame["user_idx"].nunique() if len(frame) else 0
        return {
            "name": self.name,
            "items": self.n_items,
            "users": self.n_users,
            "active_users": int(active),
            "interactions": len(frame),
            "items_with_interactions": int((self.item_counts() > 0).sum()),
            "first_timestamp": int(frame["timestamp"].min()) if len(frame) else None,
            "last_timestamp": int(frame["timestamp"].max()) if len(frame) else None,
        }


def build_text(fields: Mapping[str, Any], config: DataConfig | None = None) -> str:
    """The item text: the configured fields in order, list fields as ``"Genres: a, b"``.

    Args:
        fields: Column name -> value (a string, or a list / separated string for list fields).
        config: Which fields, in which order, and which are lists.

    Returns:
        Sentences joined with ``". "`` (no doubled punctuation); ``""`` when every field is empty.
    """
    config = config or DataConfig()
    text = ""
    for name in config.text_fields:
        if name not in fields:
            continue
        value = fields[name]
        if name in config.list_fields:
            values = parse_list(value, config.list_separator)
            part = f"{name.replace('_', ' ').capitalize()}: {', '.join(values)}" if values else ""
        else:
            part = (
                ""
                if value is None or (isinstance(value, float) and np.isnan(value))
                else " ".join(str(value).split())
            )
        if part:
            text = part if not text else text + (" " if text[-1] in ".!?" else ". ") + part
    return text


# ------------------------------------------------------------------------------------ items
def clean_items(
    frame: pd.DataFrame,
    config: DataConfig | None = None,
    path: str | Path = "<items>",
    line_offset: int | None = None,
) -> pd.DataFrame:
    """Validate an items table and add the ``text`` column.

    Args:
        frame: Raw items, one row per item, as read from ``path``.
        config: Text fields and error policy.
        path: The source, for messages.
        line_offset: See :class:`RowChecker`.

    Returns:
        Items in source order (bad rows dropped under ``on_error="skip"``).

    Raises:
        DataError: Missing ``item_id`` or text columns, or (``on_error="raise"``) a bad row.
    """
    config = config or DataConfig()
    if "item_id" not in frame.columns:
        raise DataError(path, f"missing required column 'item_id'; found {list(frame.columns)}")
    if frame.empty:
        raise DataError(path, "no items: the file holds a header and no rows")
    text_fields = [f for f in config.text_fields if f in frame.columns]
    if not text_fields:
        raise DataError(
            path,
            f"no text column: expected one of {list(config.text_fields)}; found {list(frame.columns)}",
        )
    items = frame.copy()
    items["item_id"] = as_str(items["item_id"])
    check = RowChecker(path, len(items), config.on_error, line_offset)
    ids = items["item_id"]
    check.flag(ids == "", "item_id", lambda _: "empty item_id")
    dupes = ids.duplicated(keep="first").to_numpy() & (ids != "").to_numpy()
    first_row = {item_id: pos for pos, item_id in reversed(list(enumerate(ids)))}
    check.flag(
        dupes, "item_id", lambda p: f"item_id {ids.iloc[p]!r} repeats row {first_row[ids.iloc[p]] + 1}"
    )
    for name in config.list_fields:
        if name in items.columns:
            items[name] = [parse_list(v, config.list_separator) for v in items[name]]
    columns = {name: items[name].tolist() for name in text_fields}
    items["text"] = [
        build_text({name: columns[name][pos] for name in text_fields}, config) for pos in range(len(items))
    ]
    check.flag(items["text"] == "", "text", lambda _: f"empty item text: all of {text_fields} are empty")
    if "timestamp" in items.columns:
        raw = items["timestamp"]
        seconds, ok = parse_timestamps(raw)
        check.flag(~blank(raw) & ~ok, "timestamp", timestamp_problem(raw))
        stamps = pd.Series(seconds, index=items.index, dtype="Int64")
        items["timestamp"] = stamps.mask(~ok)
    check.report("item")
    return items.loc[~check.bad].reset_index(drop=True)


# ------------------------------------------------------------------------------ interactions
def clean_interactions(
    frame: pd.DataFrame,
    item_index: Mapping[str, int],
    config: DataConfig | None = None,
    path: str | Path = "<interactions>",
    line_offset: int | None = None,
    row_numbers: np.ndarray | None = None,
) -> pd.DataFrame:
    """Validate interactions against the catalogue, drop duplicates, sort by time.

    Args:
        frame: Raw interactions as read from ``path``.
        item_index: Item id -> item index of the catalogue.
        config: Error policy, rating filter, repeat policy.
        path: The source, for messages.
        line_offset: See :class:`RowChecker`.
        row_numbers: See :class:`RowChecker`.

    Returns:
        ``user_id``, ``item_id``, ``item_idx``, ``timestamp``, ``event``, ``rating`` sorted by time
        (ties in source order); user indices are assigned by :func:`build_dataset`.

    Raises:
        DataError: Missing columns, or (per the config) a bad row or an unknown item.
    """
    config = config or DataConfig()
    missing = [c for c in ("user_id", "item_id", "timestamp") if c not in frame.columns]
    if missing:
        raise DataError(path, f"missing required column(s) {missing}; found {list(frame.columns)}")
    if frame.empty:
        raise DataError(path, "no interactions: the file holds a header and no rows")
    check = RowChecker(path, len(frame), config.on_error, line_offset, row_numbers)
    users, items = as_str(frame["user_id"]), as_str(frame["item_id"])
    check.flag(users == "", "user_id", lambda _: "empty user_id")
    check.flag(items == "", "item_id", lambda _: "empty item_id")
    seconds, ok = parse_timestamps(frame["timestamp"])
    check.flag(~ok, "timestamp", timestamp_problem(frame["timestamp"]))
    rating = np.full(len(frame), np.nan)
    if "rating" in frame.columns:
        raw = frame["rating"]
        textual = pd.api.types.is_string_dtype(raw) or raw.dtype == object
        numbers = pd.to_numeric(as_str(raw) if textual else raw, errors="coerce")
        rating = numbers.to_numpy(dtype=float, na_value=np.nan)
        check.flag(
            np.isnan(rating) & ~blank(raw), "rating", lambda p: f"rating {raw.iloc[p]!r} is not a number"
        )
    item_idx = items.map(item_index).to_numpy(dtype=float)
    unknown = np.isnan(item_idx) & (items != "").to_numpy()
    n_unknown = int((unknown & ~check.bad).sum())
    check.flag(
        unknown,
        "item_id",
        lambda p: f"item {items.iloc[p]!r} is not in the items file ({n_unknown} such rows)",
        on_error=config.unknown_items,
    )
    events = as_str(frame["event"]).replace("", DEFAULT_EVENT) if "event" in frame.columns else DEFAULT_EVENT
    out = pd.DataFrame(
        {
            "user_id": users,
            "item_id": items,
            "item_idx": np.nan_to_num(item_idx, nan=-1).astype(np.int64),
            "timestamp": seconds,
            "event": events,
            "rating": rating,
        }
    )
    check.report("interaction")
    out = out.loc[~check.bad]
    if config.min_rating is not None:
        out = out.loc[~(out["rating"] < config.min_rating)]
    return _deduplicate(out.sort_values("timestamp", kind="stable"), config, path)


def _deduplicate(frame: pd.DataFrame, config: DataConfig, path: str | Path) -> pd.DataFrame:
    exact = frame.duplicated(["user_id", "item_id", "timestamp", "event", "rating"], keep="first")
    if exact.any():
        logger.warning(
            "Dropped exact duplicate interaction rows", extra={"path": str(path), "dropped": int(exact.sum())}
        )
        frame = frame.loc[~exact]
    if config.repeats == "first":
        repeat = frame.duplicated(["user_id", "item_id"], keep="first")
        if repeat.any():
            logger.info(
                "Kept the first interaction per user and item",
                extra={"path": str(path), "dropped": int(repeat.sum())},
            )
            frame = frame.loc[~repeat]
    return frame.reset_index(drop=True)


# -------------------------------------------------------------------------------- assembling
def build_dataset(items: pd.DataFrame, interactions: pd.DataFrame, name: str) -> Dataset:
    """Assign user indices (order of first appearance in time) and wrap a :class:`Dataset`.

    Args:
        items: Output of :func:`clean_items`.
        interactions: Output of :func:`clean_interactions` against those items.
        name: A label for the data.
    """
    codes, user_ids = pd.factorize(interactions["user_id"], sort=False)
    frame = interactions.assign(user_idx=codes.astype(np.int64))
    columns = ["user_id", "item_id", "user_idx", "item_idx", "timestamp", "event", "rating"]
    return Dataset(items, frame[columns], list(user_ids), name)


def load_dataset(
    items_path: str | Path, interactions_path: str | Path, config: DataConfig | None = None
) -> Dataset:
    """Load a generic items file and interactions file (CSV, TSV or Parquet).

    Args:
        items_path: Items table (see the module docs for columns).
        interactions_path: Interactions table.
        config: Text fields and cleaning policy.

    Returns:
        The dataset, named after the interactions file.

    Raises:
        DataError: A missing or unreadable file, a bad column or row (see the module docs).
    """
    config = config or DataConfig()
    items = clean_items(read_frame(items_path, error=DataError), config, items_path)
    index = {item_id: i for i, item_id in enumerate(items["item_id"])}
    interactions = clean_interactions(
        read_frame(interactions_path, error=DataError), index, config, interactions_path
    )
    dataset = build_dataset(items, interactions, name=str(interactions_path))
    logger.info("Loaded dataset", extra={"summary": dataset.summary()})
    return dataset
