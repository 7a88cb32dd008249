"""Alert rules: their YAML form and the buckets in which they fire.

A rule watches one metric (default the share of negative items) per topic, entity, source or
overall, in buckets of its ``window``. A bucket *breaches* when it has at least ``min_volume``
items and its value is above the baseline mean by ``std_factor`` standard deviations
(``baseline_mean + std_factor * max(baseline_std, min_std)``) or at least the absolute
``threshold``. :mod:`apps.finance_monitor.alerts` turns breaches into alerts.

Example ``rules.yaml``::

    defaults:
      window: hour
      cooldown: 6h
    rules:
      - name: topic-negative-surge
        scope: topic
        std_factor: 3.0
        threshold: 0.7
        min_volume: 6
      - name: apple-negative
        entity: AAPL       # one company (or a list); implies scope: entity
        threshold: 0.6
      - name: watchlist-volume
        entity: watchlist  # every company of the monitor's watch list (monitor.watchlist)
        metric: volume
        std_factor: 4.0
        channels: [desk-slack, {type: email, smtp_env: SMTP_URL, to: [risk@example.com]}]
    channels:              # optional: shared alert channels (see apps/finance_monitor/channels.py)
      desk-slack: {type: slack, url_env: SLACK_WEBHOOK_URL}
    webhooks:              # optional: hosts exempt from the public-address rule for webhooks
      allow: [127.0.0.1]   # host names, addresses or networks (e.g. 10.1.0.0/16)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from apps.finance_monitor.aggregate import BUCKETS, SCOPES, aggregate, bucket_offset
from apps.finance_monitor.channels import (
    ChannelSpec,
    distinct_channels,
    parse_channel_section,
    parse_rule_channels,
)
from apps.finance_monitor.watchlist import WatchList
from core.config import yaml_error_message
from core.errors import check_path_kind
from core.webhook_safety import AllowList

logger = logging.getLogger(__name__)

RULE_METRICS: tuple[str, ...] = ("share_negative", "share_positive", "volume")
WATCHLIST = "watchlist"  # `entity: watchlist`: every company of the watch list
#: The alert rules shipped with the sample data (used when the settings name no rules file).
SAMPLE_RULES = Path(__file__).resolve().parent / "sample_data" / "alert_rules.yaml"
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|sec|min|m|h|d)\s*")
#: Fewest baseline values of a rule that does not say (``min_baseline_buckets``).
DEFAULT_MIN_BASELINE_BUCKETS = 3
_UNITS = {"s": "seconds", "sec": "seconds", "min": "minutes", "m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True)
class AlertRule:
    """One alert rule (YAML keys have the same names)."""

    name: str
    scope: str = dataclasses.field(default="topic", metadata={"help": "topic | entity | source | all"})
    keys: tuple[str, ...] = dataclasses.field(default=(), metadata={"help": "only these keys; empty: all"})
    entity: tuple[str, ...] = dataclasses.field(
        default=(), metadata={"help": "entity rule: these tickers, or 'watchlist' (implies scope: entity)"}
    )
    metric: str = dataclasses.field(default="share_negative", metadata={"help": f"one of {RULE_METRICS}"})
    window: str = dataclasses.field(default="hour", metadata={"help": f"bucket size, one of {list(BUCKETS)}"})
    std_factor: float | None = dataclasses.field(default=3.0, metadata={"help": "fire above mean + N std"})
    min_std: float = dataclasses.field(default=0.05, metadata={"help": "floor of the baseline std"})
    threshold: float | None = dataclasses.field(default=None, metadata={"help": "fire at or above this"})
    min_volume: int = dataclasses.field(default=5, metadata={"help": "fewest items in the bucket"})
    baseline_buckets: int = dataclasses.field(default=24, metadata={"help": "buckets in the baseline"})
    min_baseline_buckets: int = dataclasses.field(
        default=DEFAULT_MIN_BASELINE_BUCKETS,
        metadata={"help": "fewest baseline values, <= baseline_buckets"},
    )
    cooldown: timedelta = dataclasses.field(
        default=timedelta(hours=6), metadata={"help": "breaches this close to an alert extend it"}
    )
    channels: tuple[ChannelSpec, ...] = dataclasses.field(
        default=(), metadata={"help": "where its alerts go besides the log and the monitor's webhook"}
    )

    def __post_init__(self) -> None:
        problems = []
        if not self.name.strip():
            problems.append("name: must not be empty")
        if self.scope not in SCOPES:
            problems.append(f"scope: {self.scope!r} is not one of {list(SCOPES)}")
        if self.metric not in RULE_METRICS:
            problems.append(f"metric: {self.metric!r} is not one of {list(RULE_METRICS)}")
        if self.window not in BUCKETS:
            problems.append(f"window: {self.window!r} is not one of {list(BUCKETS)}")
        if self.std_factor is None and self.threshold is None:
            problems.append("std_factor/threshold: give at least one")
        if self.min_volume < 1 or self.baseline_buckets < 1 or self.min_baseline_buckets < 2:
            problems.append("min_volume and baseline_buckets must be >= 1, min_baseline_buckets >= 2")
        elif self.min_baseline_buckets > self.baseline_buckets:
            # The baseline window could never hold enough buckets: aggregation refuses such a rule
            # at its first evaluation, after the scores were committed, so refuse it here.
            default = ", the default" if self.min_baseline_buckets == DEFAULT_MIN_BASELINE_BUCKETS else ""
            problems.append(
                f"baseline_buckets: {self.baseline_buckets} is fewer than min_baseline_buckets "
                f"({self.min_baseline_buckets}{default}), so the rule could never have a baseline; "
                "raise baseline_buckets or lower min_baseline_buckets"
            )
        if self.cooldown < timedelta(0):
            problems.append("cooldown: must not be negative")
        if self.entity and self.scope != "entity":
            problems.append(f"entity: only for scope 'entity', not {self.scope!r}")
        if WATCHLIST in self.entity and len(self.entity) > 1:
            problems.append(f"entity: {WATCHLIST!r} stands alone, not in a list of tickers")
        if problems:
            raise ValueError(f"alert rule {self.name!r}: " + "; ".join(problems))

    def watched_keys(self) -> tuple[str, ...]:
        """The keys the rule looks at (empty: all).

        Raises:
            ValueError: An ``entity: watchlist`` rule without a watch list (see :func:`resolve_entity_rules`).
        """
        if self.keys or not self.entity:
            return self.keys
        if WATCHLIST in self.entity:
            raise ValueError(
                f"alert rule {self.name!r}: 'entity: {WATCHLIST}' needs a watch list (monitor.watchlist)"
            )
        return self.entity

    def history(self) -> timedelta:
        """How far before the evaluated buckets the scored items must reach (for the baseline)."""
        return bucket_offset(self.window).to_pytimedelta() * (self.baseline_buckets + 1)


def parse_duration(text: str | int | float) -> timedelta:
    """``"90s"``, ``"30min"``, ``"6h"``, ``"2d"`` (or a number of seconds) as a ``timedelta``."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return timedelta(seconds=float(text))
    match = _DURATION.fullmatch(str(text))
    if match is None:
        raise ValueError(f"{text!r} is not a duration like '30min', '6h' or '2d'")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def load_rules(path: str | Path) -> list[AlertRule]:
    """Read alert rules from YAML: ``rules:`` (a list of mappings) and optional ``defaults:``.

    Raises:
        FileNotFoundError: No such file.
        ValueError: Invalid YAML, an entry that is not a mapping, unknown keys or bad values (such as
            fewer ``baseline_buckets`` than ``min_baseline_buckets``), naming the file, rule and key.
    """
    path = Path(path)
    doc = _read_doc(path)
    if not isinstance(doc.get("rules"), list) or not doc["rules"]:
        raise ValueError(f"{path}: expected a mapping with a non-empty 'rules:' list")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ValueError(f"{path}: 'defaults' must be a mapping")
    named = parse_channel_section(str(path), doc.get("channels"))
    for i, raw in enumerate(doc["rules"], 1):
        if raw is not None and not isinstance(raw, dict):
            raise ValueError(
                f"{path}: rule {i}: expected a mapping of rule keys (name: ..., scope: ...), "
                f"got {type(raw).__name__} {raw!r:.80}"
            )
    rules = [
        _rule_from_mapping(path, i, {**defaults, **(raw or {})}, named)
        for i, raw in enumerate(doc["rules"], 1)
    ]
    names = [r.name for r in rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{path}: rule names must be unique; repeated: {dupes}")
    distinct_channels(str(path), (c for r in rules for c in r.channels))
    return rules


def rule_channels(rules: Sequence[AlertRule]) -> list[ChannelSpec]:
    """Every channel the rules send to, once each."""
    return list({c.name: c for r in rules for c in r.channels}.values())


def load_webhook_allow(path: str | Path) -> AllowList:
    """The ``webhooks: allow:`` list of a rules file (hosts exempt from the public-address rule).

    Raises:
        FileNotFoundError: No such file.
        ValueError: Invalid YAML or a malformed ``webhooks`` section, naming the file.
    """
    path = Path(path)
    section = _read_doc(path).get("webhooks") or {}
    if not isinstance(section, dict) or set(section) - {"allow"}:
        raise ValueError(f"{path}: 'webhooks' must be a mapping with only 'allow:' (a list of hosts)")
    allow = section.get("allow") or []
    allow = [allow] if isinstance(allow, str) else allow
    if not isinstance(allow, list):
        raise ValueError(f"{path}: webhooks.allow must be a list of host names, addresses or networks")
    return AllowList.parse(allow, where=f"{path}: webhooks.allow")


def _read_doc(path: Path) -> dict[str, Any]:
    path = check_path_kind(path, "file")
    if not path.is_file():
        raise FileNotFoundError(f"alert rules file not found: {path}")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start}); save it as UTF-8") from err
    except yaml.YAMLError as err:
        raise ValueError(yaml_error_message(path, err)) from err
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a mapping with a non-empty 'rules:' list")
    return doc


def _rule_from_mapping(
    path: Path, index: int, raw: dict[str, Any], named: dict[str, ChannelSpec]
) -> AlertRule:
    where = f"{path}: rule {index} ({raw.get('name', 'unnamed')!r})"
    fields = {f.name: f for f in dataclasses.fields(AlertRule)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    if "name" not in raw:
        raise ValueError(f"{where}: missing key 'name'")
    if "entity" in raw:
        if "keys" in raw:
            raise ValueError(f"{where}: give 'entity' or 'keys', not both")
        raw = {**raw, "scope": raw.get("scope", "entity")}
    channels = parse_rule_channels(where, str(raw["name"]), raw.pop("channels", None), named)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            values[key] = _coerce(key, value)
        except (TypeError, ValueError, OverflowError) as err:  # OverflowError: int(inf), a huge timedelta
            raise ValueError(f"{where}, key {key!r}: {err}") from None
    try:
        return AlertRule(**values, channels=channels)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def _coerce(key: str, value: Any) -> Any:
    if key == "cooldown":
        return parse_duration(value)
    if key == "keys":
        return (str(value),) if isinstance(value, str) else tuple(str(v) for v in value or ())
    if key == "entity":
        values = [value] if isinstance(value, str) else list(value or [])
        if not values or not all(isinstance(v, str) and v.strip() for v in values):
            raise ValueError(f"expected a ticker, a list of tickers or {WATCHLIST!r}, got {value!r}")
        return tuple(
            WATCHLIST if v.strip().lower() == WATCHLIST else v.strip().lstrip("$").upper() for v in values
        )
    if key in ("std_factor", "threshold", "min_std"):
        if value is None and key != "min_std":
            return None
        number = float(value)
        if not math.isfinite(number):  # a rule comparing with NaN or infinity never fires
            raise ValueError(f"expected a finite number, got {value!r}")
        return number
    if key in ("min_volume", "baseline_buckets", "min_baseline_buckets"):
        if isinstance(value, bool) or float(value) != int(value):
            raise ValueError(f"expected a whole number, got {value!r}")
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {value!r}")
    return value


def resolve_entity_rules(rules: list[AlertRule], watchlist: WatchList | None) -> list[AlertRule]:
    """The rules with their ``entity:`` checked against the watch list (``watchlist`` -> every ticker).

    Raises:
        ValueError: ``entity: watchlist`` without a watch list, or a ticker the watch list lacks.
    """
    out = []
    for rule in rules:
        if not rule.entity:
            out.append(rule)
        elif watchlist is None:
            rule.watched_keys()  # raises for `entity: watchlist`
            out.append(rule)
        elif WATCHLIST in rule.entity:
            out.append(dataclasses.replace(rule, keys=tuple(watchlist.tickers)))
        else:
            unknown = [t for t in rule.entity if t not in watchlist]
            if unknown:
                raise ValueError(
                    f"alert rule {rule.name!r}: entity {unknown} not on the watch list {watchlist.source}"
                )
            out.append(rule)
    return out


# --- breaches -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Breach:
    """One bucket in which a rule's condition holds for one key."""

    rule: str
    key: str
    bucket_start: datetime
    bucket_end: datetime
    value: float
    threshold: float
    reason: str  # baseline | absolute
    baseline_mean: float | None
    baseline_std: float | None
    volume: int
    item_ids: tuple[str, ...]


def find_breaches(rule: AlertRule, scored: pd.DataFrame, *, since: datetime | None = None) -> list[Breach]:
    """The buckets of ``scored`` where ``rule`` fires, oldest first.

    Args:
        rule: The rule.
        scored: Scored items reaching :meth:`AlertRule.history` before ``since``.
        since: Only buckets ending after this time.
    """
    if scored.empty:
        return []
    table = aggregate(
        scored,
        by=rule.scope,
        bucket=rule.window,
        baseline_buckets=rule.baseline_buckets,
        min_baseline_buckets=rule.min_baseline_buckets,
        with_items=True,
    )
    table = table[table["volume"] >= rule.min_volume]
    keys = rule.watched_keys()
    if keys:
        table = table[table["key"].isin(keys)]
    if since is not None and not table.empty:  # an empty table's bucket_end is float, not datetime
        table = table[table["bucket_end"] > pd.Timestamp(since)]
    breaches = []
    for row in table.sort_values(["bucket_start", "key"]).itertuples(index=False):
        breach = _check(rule, row._asdict())
        if breach is not None:
            breaches.append(breach)
    return breaches


def _check(rule: AlertRule, row: dict[str, Any]) -> Breach | None:
    value = float(row[rule.metric])
    mean = _num(row[f"{rule.metric}_baseline_mean"])
    std = _num(row[f"{rule.metric}_baseline_std"])
    fired: tuple[float, str] | None = None
    if rule.std_factor is not None and mean is not None and std is not None:
        limit = mean + rule.std_factor * max(std, rule.min_std)
        if value > limit:
            fired = (limit, "baseline")
    if fired is None and rule.threshold is not None and value >= rule.threshold:
        fired = (rule.threshold, "absolute")
    if fired is None:
        return None
    return Breach(
        rule=rule.name,
        key=str(row["key"]),
        bucket_start=row["bucket_start"].to_pydatetime(),
        bucket_end=row["bucket_end"].to_pydatetime(),
        value=value,
        threshold=fired[0],
        reason=fired[1],
        baseline_mean=mean,
        baseline_std=std,
        volume=int(row["volume"]),
        item_ids=tuple(row["item_ids"]),
    )


def _num(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
