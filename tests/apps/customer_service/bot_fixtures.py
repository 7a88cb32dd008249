"""Fixtures for the bot, storage and UI tests: a calibrated sample KB, hits built by hand, bots."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from apps.customer_service.entries import Entry
from apps.customer_service.retrieval import Hit
from tests.apps.customer_service.conftest import SAMPLE_DIR


def make_hit(
    id_: str,
    score: float = 1.0,
    cosine: float = 0.7,
    kind: str = "faq",
    text: str = "Answer text.",
    rank: int = 1,
    question: str | None = None,
) -> Hit:
    """A retrieval hit over a hand-made entry (``question`` defaults to one of its own)."""
    entry = Entry(
        id=id_,
        kind=kind,
        question="" if kind == "doc" else (question or f"Question {id_}?"),
        text=text,
        title=f"Title {id_}",
    )
    return Hit(id_, entry.title, None, score, {"dense": cosine, "fused": score}, rank, entry)


@pytest.fixture(scope="session")
def calibrated_kb_dir(sample_kb_dir, minilm, tmp_path_factory) -> Path:
    """The sample KB with its answer gate calibrated on the sample queries + out-of-scope questions."""
    from apps.customer_service.confidence import calibrate_kb
    from apps.customer_service.knowledge_base import KnowledgeBase
    from apps.customer_service.retrieval import Retriever

    kb_dir = tmp_path_factory.mktemp("calibrated") / "kb"
    shutil.copytree(sample_kb_dir, kb_dir)
    retriever = Retriever(KnowledgeBase.load(kb_dir), embedder=minilm)
    calibrate_kb(kb_dir, SAMPLE_DIR / "queries.csv", SAMPLE_DIR / "out_of_scope.csv", retriever=retriever)
    return kb_dir


@pytest.fixture(scope="session")
def smollm2():
    """The real default answer model (SmolLM2-135M-Instruct)."""
    from core.generation import Generator

    return Generator()


@pytest.fixture(scope="session")
def tiny_generator(tiny_causal_lm_dir):
    """A tiny random causal LM (its text is noise, but streaming and citations can be checked)."""
    from core.generation import Generator

    return Generator(str(tiny_causal_lm_dir), backend="torch")


@pytest.fixture
def data_kb_dir(calibrated_kb_dir) -> Path:
    """The calibrated sample KB copied to this test's default KB location ($AIGC_DATA_DIR/support/kb)."""
    from apps.customer_service.knowledge_base import default_kb_dir

    target = default_kb_dir()
    shutil.copytree(calibrated_kb_dir, target)
    return target
