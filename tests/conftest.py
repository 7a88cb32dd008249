"""Shared fixtures: isolated data directories, tiny random models, database URLs."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

# The live-API fixtures (``api``, ``suite_data_dir``) of the API endpoint, fuzz and README tests.
pytest_plugins = ["tests.api_harness"]

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    """Each test gets its own data directory and database; the model cache stays shared."""
    monkeypatch.setenv("AIGC_DATA_DIR", str(tmp_path / "aigc-data"))
    monkeypatch.delenv("AIGC_DB_URL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    """A tiny randomly initialised BERT (2 layers, hidden 32) with MiniLM's tokenizer."""
    from transformers import BertConfig, BertModel

    from core.models import load_tokenizer

    out = tmp_path_factory.mktemp("tiny-bert")
    tok = load_tokenizer("minilm-l6")
    config = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_causal_lm_dir(tmp_path_factory) -> Path:
    """A tiny randomly initialised Llama (2 layers, hidden 32) with SmolLM2's tokenizer and chat template."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from core.models import load_tokenizer

    out = tmp_path_factory.mktemp("tiny-llama")
    tok = load_tokenizer("smollm2-135m-instruct")
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def lora_with_nonzero_b(model_dir: Path):
    """A rank-4 LoRA (no dropout) on the LM at ``model_dir``, B drawn at random so the adapter matters.

    B starts at zero in peft, which would make every gradient through A zero: tests comparing
    gradients of two code paths use this so that all LoRA weights take part.
    """
    import torch

    from core.lora import LoraSettings, apply_lora
    from core.models import load_causal_lm

    base, tokenizer = load_causal_lm(str(model_dir), fresh=True)
    torch.manual_seed(0)
    model = apply_lora(base, LoraSettings(r=4, alpha=8, dropout=0.0), task_type="CAUSAL_LM")
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05)
    return model, tokenizer


def _postgres_up(host: str = "127.0.0.1", port: int = 5432) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


POSTGRES_URL = os.environ.get("AIGC_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """A database URL: a fresh SQLite file, and PostgreSQL at 127.0.0.1:5432 when it answers."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    if not _postgres_up():
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (database 'test'); SQLite half still ran")
    return POSTGRES_URL


@pytest.fixture
def isolated_db_url(db_url: str):
    """``db_url``, isolated: on PostgreSQL a fresh schema per test (via search_path), dropped after."""
    if not db_url.startswith("postgresql"):
        yield db_url
        return
    import uuid

    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(db_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        isolated = make_url(db_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield isolated.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def require_shared_data(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data set not present: {path} (tests read ../shared/data beside the checkout)")
    return path


@pytest.fixture
def wide_output():
    """Render ``aigc`` tables 200 columns wide, whatever the terminal (CI runs with COLUMNS=40)."""
    from core.console import out

    saved = out._width
    out.width = 200
    yield out
    out._width = saved
