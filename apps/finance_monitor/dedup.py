"""Near-duplicate grouping of syndicated headlines with MinHash and locality-sensitive hashing.

The same story re-published by several outlets ("Acme cuts outlook" / "UPDATE 1-Acme cuts
outlook - Wirewatch") must count once in trends and alerts. Each headline becomes a set of
word bigrams (lower-cased, punctuation dropped, common wire prefixes and URLs removed); items
whose sets have Jaccard similarity at least ``threshold`` and whose timestamps are within
``window`` of each other share a group, named after the first item seen.

Candidates come from MinHash-LSH (``num_perm`` hash functions cut into ``bands``), so adding an
item costs about the same however many are indexed; every candidate is then checked with the
exact Jaccard similarity, so LSH can only miss pairs, never invent them. MinHash is written
here (about 40 lines of NumPy) rather than taken from ``datasketch`` to avoid a dependency
for this small part; embeddings would also catch paraphrases but cost a model call per item.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

logger = logging.getLogger(__name__)

_WORD = re.compile(r"[a-z0-9$%.]+")
_URL = re.compile(r"https?://\S+")
# Wire-service decorations that differ between syndicated copies of one story.
_PREFIX = re.compile(r"^\s*(?:(?:update|corrected|refile|exclusive|breaking|wrapup)\s*\d*\s*[-:|]\s*)+", re.I)


def shingles(text: str, size: int = 2) -> set[str]:
    """Word ``size``-grams of a normalised headline (single words when it is shorter).

    Args:
        text: The headline.
        size: Words per shingle.

    Returns:
        The set of shingles (empty for text without words).
    """
    text = _PREFIX.sub("", _URL.sub(" ", text.lower()))
    words = [w.strip(".") for w in _WORD.findall(text)]
    words = [w for w in words if w]
    if len(words) < size:
        return set(words)
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    """Jaccard similarity of two sets (0 when both are empty)."""
    if not a and not b:
        return 0.0
    return len(a & b) / len(a | b)


class MinHasher:
    """MinHash signatures: ``num_perm`` seeded 64-bit hash functions, the minimum of each over a set.

    Each hash function is the splitmix64 finaliser applied to the shingle's 64-bit BLAKE2b hash
    XOR a per-function seed. (Linear hashes ``(a*x + b) mod p`` with small ``a`` order the
    elements almost alike for every function, which ruins the Jaccard estimate.)

    Args:
        num_perm: Signature length.
        seed: Seed of the hash functions (signatures are comparable only with the same seed).
    """

    def __init__(self, num_perm: int = 64, seed: int = 1) -> None:
        if num_perm < 1:
            raise ValueError(f"num_perm must be positive, got {num_perm}")
        rng = np.random.default_rng(seed)
        self.seeds = rng.integers(0, np.iinfo(np.uint64).max, size=num_perm, dtype=np.uint64, endpoint=True)
        self.num_perm = num_perm

    def signature(self, items: set[str]) -> np.ndarray:
        """The signature of a set of strings: ``num_perm`` uint64 minima (all max for an empty set)."""
        if not items:
            return np.full(self.num_perm, np.iinfo(np.uint64).max, dtype=np.uint64)
        hashes = np.array(
            [
                int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "little")
                for s in items
            ],
            dtype=np.uint64,
        )
        return _splitmix64(hashes[:, None] ^ self.seeds[None, :]).min(axis=0)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on an array (uint64 arithmetic wraps modulo 2**64, as intended)."""
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@dataclass
class _Entry:
    group: str
    timestamp: datetime
    shingles: set[str]


class NearDuplicateIndex:
    """Assigns each added item to a group of near-duplicates seen within a time window.

    Args:
        threshold: Minimum Jaccard similarity of word bigrams to count as the same story.
        window: Maximum time between two copies of one story.
        num_perm: MinHash signature length.
        bands: LSH bands (``num_perm`` must divide evenly); more bands find lower similarities.
        shingle_size: Words per shingle.
    """

    def __init__(
        self,
        threshold: float = 0.6,
        window: timedelta = timedelta(hours=48),
        num_perm: int = 64,
        bands: int = 16,
        shingle_size: int = 2,
    ) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if num_perm % bands:
            raise ValueError(f"num_perm ({num_perm}) must be a multiple of bands ({bands})")
        self.threshold = threshold
        self.window = window
        self.bands = bands
        self.shingle_size = shingle_size
        self._hasher = MinHasher(num_perm)
        self._rows = num_perm // bands
        self._entries: dict[str, _Entry] = {}
        self._buckets: dict[tuple[int, bytes], list[str]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._entries

    def add(self, item_id: str, text: str, timestamp: datetime, group: str | None = None) -> str:
        """Index an item and return its group id.

        Args:
            item_id: The item's id (adding an id again returns its existing group).
            text: The text compared (the headline).
            timestamp: Publication time (aware).
            group: A known group (when reloading stored items); default: the group of the most
                similar earlier item within the window, or ``item_id`` itself.

        Returns:
            The group id: the id of the first item of the story.
        """
        known = self._entries.get(item_id)
        if known is not None:
            return known.group
        grams = shingles(text, self.shingle_size)
        signature = self._hasher.signature(grams)
        if group is None:
            match = self._best_match(grams, signature, timestamp)
            group = match.group if match is not None else item_id
        self._entries[item_id] = _Entry(group, timestamp, grams)
        if grams:
            for key in self._band_keys(signature):
                self._buckets.setdefault(key, []).append(item_id)
        return group

    def find(self, text: str, timestamp: datetime) -> str | None:
        """The group an item with ``text`` at ``timestamp`` would join, without adding it."""
        grams = shingles(text, self.shingle_size)
        match = self._best_match(grams, self._hasher.signature(grams), timestamp)
        return match.group if match is not None else None

    def prune(self, before: datetime) -> int:
        """Forget items older than ``before`` (they can no longer match new ones); returns how many."""
        old = {i for i, e in self._entries.items() if e.timestamp < before}
        if not old:
            return 0
        for item_id in old:
            del self._entries[item_id]
        for key in list(self._buckets):
            kept = [i for i in self._buckets[key] if i not in old]
            if kept:
                self._buckets[key] = kept
            else:
                del self._buckets[key]
        return len(old)

    def _band_keys(self, signature: np.ndarray) -> list[tuple[int, bytes]]:
        r = self._rows
        return [(b, signature[b * r : (b + 1) * r].tobytes()) for b in range(self.bands)]

    def _best_match(self, grams: set[str], signature: np.ndarray, timestamp: datetime) -> _Entry | None:
        if not grams:
            return None
        candidates = {i for key in self._band_keys(signature) for i in self._buckets.get(key, ())}
        best: tuple[float, _Entry] | None = None
        # Earliest first, so ties go to the older story (deterministic whatever the set order).
        for cand_id in sorted(candidates, key=lambda i: (self._entries[i].timestamp, i)):
            entry = self._entries[cand_id]
            if abs(entry.timestamp - timestamp) > self.window:
                continue
            score = jaccard(grams, entry.shingles)
            if score >= self.threshold and (best is None or score > best[0]):
                best = (score, entry)
        return best[1] if best is not None else None
