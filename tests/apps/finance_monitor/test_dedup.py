"""Near-duplicate grouping: syndicated copies share a group, different stories do not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from apps.finance_monitor.dedup import MinHasher, NearDuplicateIndex, jaccard, shingles

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def test_shingles_normalise_wire_decorations():
    a = shingles("Northwind cuts 2026 outlook as refinery stays shut")
    b = shingles("UPDATE 2-Northwind cuts 2026 outlook as refinery stays shut https://t.co/xyz")
    assert a == b
    assert shingles("Oil") == {"oil"}
    assert shingles("!!!") == set()


def test_minhash_estimates_jaccard():
    hasher = MinHasher(num_perm=256, seed=3)
    a = {f"w{i}" for i in range(100)}
    b = {f"w{i}" for i in range(50, 150)}  # Jaccard 50/150 = 1/3
    est = float(np.mean(hasher.signature(a) == hasher.signature(b)))
    assert abs(est - 1 / 3) < 0.1
    assert (hasher.signature(a) == hasher.signature(set(a))).all()


def test_syndicated_copies_join_the_first_story():
    index = NearDuplicateIndex()
    first = index.add("a", "Northwind cuts 2026 outlook as refinery stays shut", T0)
    copy = index.add(
        "b", "UPDATE 1-Northwind cuts 2026 outlook as refinery stays shut - Quay", T0 + timedelta(hours=1)
    )
    other = index.add(
        "c", "Northwind raises 2026 outlook as refinery restarts early", T0 + timedelta(hours=2)
    )
    numbers = index.add("d", "Acme shares fall 3% after profit warning", T0)
    numbers2 = index.add("e", "Acme shares fall 7% after profit warning", T0)
    assert (first, copy, other) == ("a", "a", "c")
    assert (
        jaccard(
            shingles("Acme shares fall 3% after profit warning"),
            shingles("Acme shares fall 7% after profit warning"),
        )
        < 0.6
    )
    assert (numbers, numbers2) == ("d", "e")
    assert index.add("b", "anything", T0) == "a"  # re-adding an id keeps its group


def test_window_and_explicit_group_and_prune():
    index = NearDuplicateIndex(window=timedelta(hours=24))
    index.add("old", "Fed holds rates steady, signals patience", T0, group="g-old")
    assert index.find("Fed holds rates steady, signals patience", T0 + timedelta(hours=23)) == "g-old"
    assert index.find("Fed holds rates steady, signals patience", T0 + timedelta(hours=25)) is None
    assert index.prune(T0 + timedelta(seconds=1)) == 1
    assert len(index) == 0
    assert index.find("Fed holds rates steady, signals patience", T0) is None


def test_bad_parameters():
    with pytest.raises(ValueError, match="multiple of bands"):
        NearDuplicateIndex(num_perm=64, bands=10)
    with pytest.raises(ValueError, match="threshold"):
        NearDuplicateIndex(threshold=0)
