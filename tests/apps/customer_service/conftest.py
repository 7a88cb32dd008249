"""Fixtures of the support-app tests: sample data, a tiny and the real embedder, a sample KB."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.embeddings import Embedder

SAMPLE_DIR = Path(__file__).resolve().parents[3] / "apps" / "customer_service" / "sample_data"


class RecordingEmbedder(Embedder):
    """A real embedder that also records every text it was asked to encode."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[list[str]] = []

    def encode(self, texts, batch_size=64, show_progress_bar=None):
        self.calls.append(list(texts))
        return super().encode(texts, batch_size=batch_size, show_progress_bar=show_progress_bar)

    @property
    def encoded(self) -> list[str]:
        return [text for call in self.calls for text in call]


@pytest.fixture
def tiny_embedder(tiny_encoder_dir) -> RecordingEmbedder:
    """The tiny random BERT as an embedder (fast; vectors are meaningless but deterministic)."""
    return RecordingEmbedder(str(tiny_encoder_dir))


@pytest.fixture(scope="session")
def minilm() -> Embedder:
    """The real default encoder (all-MiniLM-L6-v2)."""
    return Embedder("minilm-l6")


@pytest.fixture(scope="session")
def sample_kb_dir(tmp_path_factory, minilm) -> Path:
    """The shipped sample KB (FAQ + policies) indexed once per session with the real MiniLM."""
    from apps.customer_service.knowledge_base import KnowledgeBase

    kb_dir = tmp_path_factory.mktemp("sample-kb") / "kb"
    KnowledgeBase.build([SAMPLE_DIR / "faq.csv", SAMPLE_DIR / "policies"], kb_dir, embedder=minilm)
    return kb_dir
