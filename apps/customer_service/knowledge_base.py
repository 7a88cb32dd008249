"""The knowledge-base directory: entries, a dense index per field, a BM25 index and a manifest.

Layout of ``kb_dir``::

    manifest.json          format, embedding model, dim, counts, built_at, sources, config,
                           per-entry content hashes, what the last build did
    entries.jsonl          one Entry per line; line i is document i of the BM25 index
    dense/question/        core VectorIndex of the entries' question fields
    dense/content/         core VectorIndex of the entries' content fields
    adapter/               only after ``--adapt``: the encoder's LoRA adapter (peft safetensors + JSON),
                           adaptation.json (held-out gain) and the generated questions
                           (:mod:`apps.customer_service.adaptation`)
    bm25/                  FieldBM25 (bm25s files per field + config.json)
    calibration.json       the answer gate fitted on this KB (apps.customer_service.confidence)
    artifact.json          kind, format version and the sha256 of every file but calibration.json
    screen.json            the prompt-injection screen's verdict per entry and the screen version
                           (:mod:`apps.customer_service.injection_screen`; redone on load when the
                           screen changed or the file is missing)

:meth:`KnowledgeBase.build` reads the sources, then re-uses the vectors of every entry whose
content hash and embedding model are unchanged since the previous build in ``kb_dir``, embeds
only new and changed entries, drops removed ones and rebuilds BM25 (cheap). Everything is written
to a temporary sibling directory that is swapped in by two renames (:func:`core.io.artifacts.open_artifact`);
on any error the previous knowledge base stays as it was, and a kill between the renames is undone
on the next load or build. A directory that exists but is not a knowledge base is never replaced.
The answer gate's ``calibration.json`` is kept when the entries did not change; otherwise it is
dropped (it was fitted on other entries) and the build report says so;
:func:`apps.customer_service.confidence.build_and_calibrate` then recalibrates it when
``calibration_queries`` and ``calibration_out_of_scope`` are configured.

Example:
    >>> kb = KnowledgeBase.build(["faq.csv", "policies/"], "kb")  # first build: embeds everything
    >>> kb = KnowledgeBase.build(["faq.csv", "policies/"], "kb")  # nothing changed
    >>> kb.last_build.embedded, kb.last_build.unchanged
    (0, 66)
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apps.customer_service.adaptation import (
    Adaptation,
    adapt_encoder,
    load_encoder,
    read_adapter,
    read_questions,
)
from apps.customer_service.bm25_index import FIELDS, FieldBM25
from apps.customer_service.config import KBConfig
from apps.customer_service.errors import KBFormatError
from apps.customer_service.injection_screen import screen_entries, screen_entry
from apps.customer_service.sources import Entry, Source, load_sources
from core.config import from_dict, to_dict
from core.embeddings import Embedder
from core.index import VectorIndex
from core.injection import Verdict, screen_version
from core.io.artifacts import ArtifactError, check_target, open_artifact, recover, verify_artifact
from core.paths import data_dir

logger = logging.getLogger(__name__)

KB_FORMAT = "aigc-support-kb"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
ENTRIES_FILE = "entries.jsonl"
DENSE_DIR = "dense"
BM25_DIR = "bm25"
CALIBRATION_FILE = "calibration.json"
SCREEN_FILE = "screen.json"


@dataclass(frozen=True)
class BuildReport:
    """What a build did: entry counts by fate, texts embedded, time taken, and the answer gate.

    ``calibration`` is ``kept`` (entries unchanged), ``dropped`` (the entries changed: recalibrate),
    ``recalibrated`` (with the configured labelled queries) or ``none`` (there was none).
    """

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    embedded: int = 0
    seconds: float = 0.0
    calibration: str = "none"


class KnowledgeBase:
    """A loaded knowledge base: entries plus their dense and BM25 indexes.

    Build one with :meth:`build`, open one with :meth:`load`. Retrieval lives in
    :mod:`apps.customer_service.retrieval`.

    Attributes:
        path: The directory (``None`` for one not saved).
        entries: All entries; position ``i`` is document ``i`` of :attr:`bm25`.
        dense: One :class:`core.index.VectorIndex` per field (``question``, ``content``).
        bm25: The lexical index.
        manifest: The parsed ``manifest.json``.
        screen: Prompt-injection verdict per entry id (computed on first use when not given).
    """

    def __init__(
        self,
        path: Path | None,
        entries: list[Entry],
        dense: dict[str, VectorIndex],
        bm25: FieldBM25,
        manifest: dict[str, Any],
        screen: dict[str, Verdict] | None = None,
    ) -> None:
        self.path = path
        self.entries = entries
        self.dense = dense
        self.bm25 = bm25
        self.manifest = manifest
        self._by_id = {entry.id: i for i, entry in enumerate(entries)}
        self._screen = screen

    @property
    def screen(self) -> dict[str, Verdict]:
        """Prompt-injection verdict per entry id (stored at build time; screened now when missing)."""
        if self._screen is None or set(self._screen) != set(self._by_id):
            self._screen = screen_entries(self.entries)
        return self._screen

    def is_flagged(self, entry: Entry) -> bool:
        """Whether ``entry`` reads as instructions to the model (then it is never quoted or sent to it).

        The stored verdict when ``entry`` is this KB's entry of that id; any other entry is screened now.
        """
        position = self._by_id.get(entry.id)
        if position is not None and self.entries[position] == entry:
            return self.screen[entry.id].flagged
        return screen_entry(entry).flagged

    # ------------------------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._by_id

    def get(self, entry_id: str) -> Entry:
        """The entry with this id.

        Raises:
            KeyError: No such entry.
        """
        try:
            return self.entries[self._by_id[entry_id]]
        except KeyError:
            raise KeyError(f"no entry {entry_id!r} in the knowledge base") from None

    def position(self, entry_id: str) -> int:
        """Row of the entry in :attr:`entries` (and in the BM25 score arrays)."""
        return self._by_id[entry_id]

    @property
    def embedding_model(self) -> str:
        """Id of the encoder that made the dense vectors; queries must use the same."""
        return str(self.manifest["embedding_model"])

    @property
    def dim(self) -> int:
        """Dimension of the dense vectors."""
        return int(self.manifest["dim"])

    @property
    def last_build(self) -> BuildReport:
        """What the build that wrote this knowledge base did."""
        return BuildReport(**self.manifest.get("last_build", {}))

    def stats(self) -> dict[str, Any]:
        """Counts per kind, embedding model, dimension, build time, sources, and the entries the
        prompt-injection screen flagged (id, field, reason, excerpt)."""
        return {
            "entries": len(self),
            "counts": dict(self.manifest["counts"]),
            "embedding_model": self.embedding_model,
            "dim": self.dim,
            "built_at": self.manifest["built_at"],
            "sources": list(self.manifest.get("sources", [])),
            "adaptation": self.manifest.get("adaptation"),
            "flagged": [
                {"id": i, "field": v.field, "reason": v.reason, "excerpt": v.excerpt}
                for i, v in self.screen.items()
                if v.flagged
            ],
        }

    # -------------------------------------------------------------------------------- build
    @classmethod
    def build(
        cls,
        sources: Sequence[str | Path | Source],
        kb_dir: str | Path,
        config: KBConfig | None = None,
        embedder: Embedder | None = None,
        show_progress_bar: bool = False,
        adapt: bool = False,
        generator: Any = None,
    ) -> KnowledgeBase:
        """Index ``sources`` into ``kb_dir``, re-using unchanged vectors of the KB already there.

        With ``adapt`` the encoder is first adapted to the entries
        (:func:`apps.customer_service.adaptation.adapt_encoder`, settings ``config.adapt``): a kept
        adapter is saved in ``kb_dir/adapter`` and embeds the entries and, later, the queries; the
        manifest's ``adaptation`` records the held-out gain either way. Without ``adapt`` a kept
        adapter of the previous build is carried over when its base is ``config.embedding_model``.

        Args:
            sources: Files and folders (see :func:`apps.customer_service.sources.read_source`); the KB
                holds exactly their entries afterwards.
            kb_dir: The knowledge-base directory (created, or updated in place atomically).
            config: Build settings; ``embedder``, when given, replaces its ``embedding_model``.
            embedder: A ready embedder (saves loading one); not with ``adapt``.
            show_progress_bar: Show tqdm bars while embedding and indexing.
            adapt: Adapt the encoder to these entries first.
            generator: The answer model writing questions for ``adapt`` (default: loaded).

        Returns:
            The new knowledge base; ``last_build`` says what changed.

        Raises:
            FileNotFoundError: A source does not exist.
            SourceError: A source file is bad (nothing is written).
            KBFormatError: ``kb_dir`` exists but is not a knowledge base (it is left alone).
        """
        start = time.perf_counter()
        config = config or KBConfig()
        kb_dir = Path(kb_dir)
        _check_target(kb_dir)
        entries = load_sources(sources, config.chunking)
        previous = _previous_for_update(kb_dir)
        embedder, adaptation = _encoder_for_build(
            previous, entries, config, embedder, adapt, generator, show_progress_bar
        )
        if adaptation is None or not adaptation.report.kept:  # record what was really used
            config = replace(config, embedding_model=embedder.model_id)
        reusable = _reusable_ids(previous, entries, embedder)
        dense, embedded = _dense_indexes(
            previous, entries, reusable, embedder, config.batch_size, show_progress_bar
        )
        bm25 = FieldBM25.build(
            {
                "question": [e.question_field() for e in entries],
                "content": [e.content_field() for e in entries],
            },
            config.bm25,
            show_progress_bar=show_progress_bar,
        )
        old_hashes = previous.manifest["hashes"] if previous else {}
        new_ids = {e.id for e in entries}
        unchanged = previous is not None and len(reusable) == len(entries) == len(old_hashes)
        calibrated = previous is not None and (kb_dir / CALIBRATION_FILE).is_file()
        report = BuildReport(
            added=sum(e.id not in old_hashes for e in entries),
            updated=sum(e.id in old_hashes and e.id not in reusable for e in entries),
            removed=sum(i not in new_ids for i in old_hashes),
            unchanged=len(reusable),
            embedded=embedded,
            seconds=round(time.perf_counter() - start, 3),
            calibration=("kept" if unchanged else "dropped") if calibrated else "none",
        )
        manifest = _manifest(entries, sources, config, embedder, report)
        if adaptation is not None:
            manifest["adaptation"] = adaptation.report.to_dict()
        screen = screen_entries(entries)
        _write_atomically(
            kb_dir, entries, dense, bm25, manifest, screen, report.calibration == "kept", adaptation
        )
        if report.calibration == "dropped":
            logger.info("Entries changed: the answer gate must be recalibrated", extra={"path": str(kb_dir)})
        logger.info("Built knowledge base", extra={"path": str(kb_dir), **manifest["last_build"]})
        return cls(kb_dir, entries, dense, bm25, manifest, screen)

    # --------------------------------------------------------------------------------- load
    @classmethod
    def load(cls, kb_dir: str | Path) -> KnowledgeBase:
        """Open a knowledge base written by :meth:`build`.

        Raises:
            FileNotFoundError: ``kb_dir`` does not exist.
            KBFormatError: It is not a knowledge base, or its files are corrupt or disagree.
        """
        kb_dir = Path(kb_dir)
        manifest = read_manifest(kb_dir)
        entries = _read_entries(kb_dir / ENTRIES_FILE)
        ids = [e.id for e in entries]
        if len(set(ids)) != len(ids):
            raise KBFormatError(f"{kb_dir / ENTRIES_FILE} holds duplicate entry ids")
        hashes = {e.id: e.content_hash for e in entries}
        if hashes != manifest["hashes"]:
            raise KBFormatError(
                f"{kb_dir}: {ENTRIES_FILE} and {MANIFEST_FILE} disagree on the entries or their hashes; "
                "rebuild it"
            )
        dense = {}
        for name in FIELDS:
            try:
                index = VectorIndex.load(  # its hashes are checked with the KB's below
                    kb_dir / DENSE_DIR / name, expected_model=manifest["embedding_model"], verify=False
                )
            except (FileNotFoundError, ValueError) as err:
                raise KBFormatError(f"{kb_dir}: dense index '{name}' is missing or corrupt: {err}") from err
            if index.dim != manifest["dim"] or set(index.ids) != set(ids):
                raise KBFormatError(f"{kb_dir}: dense index '{name}' does not hold exactly the KB's entries")
            dense[name] = index
        bm25 = FieldBM25.load(kb_dir / BM25_DIR)
        if bm25.n_docs != len(entries):
            raise KBFormatError(
                f"{kb_dir}: BM25 index holds {bm25.n_docs} documents for {len(entries)} entries"
            )
        try:  # last: the checks above name the part at fault, the hashes catch what they miss
            verify_artifact(kb_dir, kinds=(KB_FORMAT,))
        except (ArtifactError, FileNotFoundError) as err:
            raise KBFormatError(f"{err} Rebuild the knowledge base.") from err
        return cls(kb_dir, entries, dense, bm25, manifest, _read_screen(kb_dir / SCREEN_FILE))


# ------------------------------------------------------------------------------------ helpers
def default_kb_dir() -> Path:
    """Where the knowledge base lives when no directory is given: ``$AIGC_DATA_DIR/support/kb``."""
    return data_dir() / "support" / "kb"


def sources_dir(kb_dir: str | Path) -> Path:
    """Folder of the sources added to ``kb_dir`` after its first build (uploads on the admin page,
    approved gap answers): ``{kb_dir}_sources`` beside it (not inside: every build replaces the KB
    directory wholesale)."""
    kb_dir = Path(kb_dir)
    return kb_dir.parent / f"{kb_dir.name}_sources"


def read_manifest(kb_dir: str | Path) -> dict[str, Any]:
    """Parse and check ``manifest.json`` of a knowledge-base directory.

    Raises:
        FileNotFoundError: ``kb_dir`` does not exist.
        KBFormatError: No manifest, not JSON, another format, or missing fields.
    """
    kb_dir = Path(kb_dir)
    recover(kb_dir)  # a build killed between the two renames of its swap
    if kb_dir.exists() and not kb_dir.is_dir():
        raise KBFormatError(f"{kb_dir} is a file, not a knowledge-base directory")
    if not kb_dir.is_dir():
        raise FileNotFoundError(
            f"knowledge base {kb_dir} does not exist; build it with "
            f"`aigc support index SOURCE... --kb-dir {kb_dir}`"
        )
    path = kb_dir / MANIFEST_FILE
    if not path.is_file():
        raise KBFormatError(f"{kb_dir} is not a knowledge base: it has no {MANIFEST_FILE}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise KBFormatError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != KB_FORMAT:
        raise KBFormatError(f"{path} is not a knowledge-base manifest (field 'format' must be {KB_FORMAT!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise KBFormatError(
            f"{path}: field 'format_version' is {manifest.get('format_version')!r}, this version reads "
            f"{FORMAT_VERSION}; rebuild the knowledge base"
        )
    missing = [k for k in ("embedding_model", "dim", "counts", "built_at", "hashes") if k not in manifest]
    if missing:
        raise KBFormatError(f"{path} lacks field(s) {missing}")
    if not isinstance(manifest["hashes"], dict):
        raise KBFormatError(f"{path}: field 'hashes' must be an object of entry id -> hash")
    return manifest


def load_config(manifest: dict[str, Any]) -> KBConfig:
    """The :class:`KBConfig` a knowledge base was built with (defaults for missing keys)."""
    return from_dict(KBConfig, manifest.get("config", {}))


def _read_screen(path: Path) -> dict[str, Verdict] | None:
    """Stored verdicts, or ``None`` (screen again) when absent, unreadable or from another screen."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("screen_version") != screen_version():
            logger.info("Injection screen changed since the KB was built; screening again")
            return None
        return {i: Verdict.from_dict(v) for i, v in data["verdicts"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        logger.info("No stored injection-screen verdicts; screening again", extra={"error": str(err)})
        return None


def _read_entries(path: Path) -> list[Entry]:
    if not path.is_file():
        raise KBFormatError(f"knowledge-base file {path} is missing")
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(Entry.from_dict(json.loads(line)))
        except (json.JSONDecodeError, TypeError, ValueError) as err:
            raise KBFormatError(f"{path}: line {number} is not a valid entry: {err}") from err
    if not entries:
        raise KBFormatError(f"{path} holds no entries")
    return entries


def _check_target(kb_dir: Path) -> None:
    """Refuse a ``kb_dir`` that is a file, another artifact, or a non-empty folder that is no KB."""
    recover(kb_dir)
    try:
        check_target(kb_dir, KB_FORMAT)
    except ArtifactError as err:
        raise KBFormatError(f"{err} (--kb-dir)") from err


def _previous_for_update(kb_dir: Path) -> KnowledgeBase | None:
    """The KB already in ``kb_dir`` (``None`` when absent or unreadable but ours)."""
    _check_target(kb_dir)
    if not kb_dir.exists() or not any(kb_dir.iterdir()):
        return None
    try:
        read_manifest(kb_dir)
    except (FileNotFoundError, KBFormatError) as err:
        raise KBFormatError(
            f"{kb_dir} exists and is not a knowledge base this version can update ({err}); "
            "choose another --kb-dir or delete it"
        ) from err
    try:
        return KnowledgeBase.load(kb_dir)
    except (KBFormatError, ValueError) as err:
        logger.warning(
            "Previous knowledge base is corrupt; re-embedding everything", extra={"error": str(err)}
        )
        return None


def _reusable_ids(previous: KnowledgeBase | None, entries: list[Entry], embedder: Embedder) -> set[str]:
    if previous is None:
        return set()
    if previous.embedding_model != embedder.model_id or previous.dim != embedder.dim:
        logger.info(
            "Embedding model changed; re-embedding everything",
            extra={"old": previous.embedding_model, "new": embedder.model_id},
        )
        return set()
    old = previous.manifest["hashes"]
    return {e.id for e in entries if old.get(e.id) == e.content_hash}


def _encoder_for_build(
    previous: KnowledgeBase | None,
    entries: list[Entry],
    config: KBConfig,
    embedder: Embedder | None,
    adapt: bool,
    generator: Any,
    show_progress_bar: bool,
) -> tuple[Any, Adaptation | None]:
    """The encoder of this build: adapted now, carried over from the previous build, or as given."""
    if adapt:
        if embedder is not None:
            raise ValueError("adapt trains its own encoder; do not pass an embedder with it")
        adaptation = adapt_encoder(
            entries,
            config.embedding_model,
            config.adapt,
            generator=generator,
            previous_questions=read_questions(previous.path if previous else None),
            show_progress_bar=show_progress_bar,
        )
        return adaptation.embedder, adaptation
    if embedder is None and previous is not None and previous.path is not None:
        carried = read_adapter(previous.path, previous.manifest)
        if carried is not None and carried.report.base == config.embedding_model:
            carried.embedder = load_encoder(previous.path, previous.manifest)
            logger.info(
                "Keeping the adapted encoder of the previous build", extra={"model": previous.embedding_model}
            )
            return carried.embedder, carried
    return embedder or Embedder(config.embedding_model), None


def _dense_indexes(
    previous: KnowledgeBase | None,
    entries: list[Entry],
    reusable: set[str],
    embedder: Embedder,
    batch_size: int,
    show_progress_bar: bool,
) -> tuple[dict[str, VectorIndex], int]:
    """Per-field indexes holding every entry; only entries outside ``reusable`` are embedded."""
    todo = [e for e in entries if e.id not in reusable]
    texts = [e.question_field() for e in todo] + [e.content_field() for e in todo]
    vectors = embedder.encode(texts, batch_size=batch_size, show_progress_bar=show_progress_bar)
    field_vectors = {"question": vectors[: len(todo)], "content": vectors[len(todo) :]}
    dense = {}
    for name in FIELDS:
        if previous is not None and reusable:
            index = previous.dense[name]
            stale = [e.id for e in previous.entries if e.id not in reusable]
            index.remove(stale, missing_ok=True)
        else:
            index = VectorIndex(embedder.dim, embedder.model_id)
        if todo:
            index.add([e.id for e in todo], field_vectors[name], embedding_model=embedder.model_id)
        dense[name] = index
    return dense, len(texts)


def _manifest(
    entries: list[Entry],
    sources: Sequence[str | Path | Source],
    config: KBConfig,
    embedder: Embedder,
    report: BuildReport,
) -> dict[str, Any]:
    counts = Counter(e.kind for e in entries)
    return {
        "format": KB_FORMAT,
        "format_version": FORMAT_VERSION,
        "embedding_model": embedder.model_id,
        "dim": embedder.dim,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "counts": {
            "entries": len(entries),
            **{kind: counts.get(kind, 0) for kind in ("faq", "doc", "dialogue")},
        },
        "sources": [{"path": str(s.path), "kind": s.kind} for s in map(Source.parse, sources)],
        "config": to_dict(config),
        "fields": list(FIELDS),
        "files": {
            "entries": ENTRIES_FILE,
            "dense": {n: f"{DENSE_DIR}/{n}" for n in FIELDS},
            "bm25": BM25_DIR,
        },
        "last_build": asdict(report),
        "hashes": {e.id: e.content_hash for e in entries},
    }


def _write_atomically(
    kb_dir: Path,
    entries: list[Entry],
    dense: dict[str, VectorIndex],
    bm25: FieldBM25,
    manifest: dict[str, Any],
    screen: dict[str, Verdict],
    keep_calibration: bool = False,
    adaptation: Adaptation | None = None,
) -> None:
    """Write everything into a temp sibling, then swap it in; the old KB survives any failure."""
    carry = (CALIBRATION_FILE,) if keep_calibration else ()
    with open_artifact(
        kb_dir, KB_FORMAT, version=FORMAT_VERSION, unhashed=(CALIBRATION_FILE,), carry=carry
    ) as tmp:
        with (tmp / ENTRIES_FILE).open("w", encoding="utf-8") as fh:
            for entry in entries:
                fh.write(json.dumps(entry.to_dict(), ensure_ascii=False) + "\n")
        for name, index in dense.items():
            index.save(tmp / DENSE_DIR / name)
        bm25.save(tmp / BM25_DIR)
        if adaptation is not None:
            adaptation.write(tmp)
        stored = {"screen_version": screen_version(), "verdicts": {i: v.to_dict() for i, v in screen.items()}}
        (tmp / SCREEN_FILE).write_text(json.dumps(stored, ensure_ascii=False) + "\n", encoding="utf-8")
        # The manifest goes last: a directory with a manifest is complete.
        (tmp / MANIFEST_FILE).write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )


__all__ = [
    "CALIBRATION_FILE",
    "BuildReport",
    "KnowledgeBase",
    "default_kb_dir",
    "load_config",
    "read_manifest",
    "sources_dir",
]
