import json
import shutil

import numpy as np
import pytest
import torch

from core import models
from core.embeddings import Embedder, pool, read_pooling_modes

TEXTS = [
    "How do I reset my password?",
    "Opening hours of the Berlin store",
    "a",
    "",
    "The central bank raised interest rates by 25 basis points on Thursday.",
    "Shares of ACME Corp. fell 12% after the earnings call; analysts cut targets.",
    "I ordered a blue jacket (size M) but received a red one — can I exchange it?",
    "¿Dónde está la estación de tren?",
    "Das Paket ist nicht angekommen.",
    "東京の天気はどうですか",
    "🙂 thanks!!!",
    "refund refund refund",
    "   leading and trailing spaces   ",
    "UPPERCASE TEXT SHOULD EMBED LIKE ANY OTHER",
    "Order #12345 shipped on 2024-03-01 via DHL, tracking 00340434161094042557.",
    "My cat sleeps all day.",
    "Quarterly revenue: $1.2bn (+8% y/y), EBITDA margin 23.4%.",
    # Longer than MiniLM's 256-token limit: exercises truncation.
    "The customer wrote a very long complaint about the delivery. " * 40,
    " ".join(f"word{i}" for i in range(400)),
    "Recommended for you: science fiction movies with strong female leads and time travel.",
]


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    return Embedder("minilm-l6", precision="fp32")


@pytest.fixture(scope="module")
def minilm_bf16() -> Embedder:
    return Embedder("minilm-l6", precision="bf16")


@pytest.fixture(scope="module")
def tiny(tiny_encoder_dir) -> Embedder:
    return Embedder(str(tiny_encoder_dir), precision="fp32")


def test_matches_sentence_transformers(minilm):
    st = pytest.importorskip("sentence_transformers", reason="parity check needs the dev extra")

    reference = st.SentenceTransformer(str(models.model_path("minilm-l6")), device="cpu")
    expected = reference.encode(TEXTS, batch_size=32, convert_to_numpy=True, normalize_embeddings=True)
    got = minilm.encode(TEXTS, batch_size=4)
    assert got.shape == (len(TEXTS), 384) and got.dtype == np.float32
    cosine = (got * expected).sum(axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() >= 0.999, cosine
    assert minilm.max_length == reference.max_seq_length == 256
    assert minilm.pooling == ("mean",) and minilm.dim == 384 and minilm.model_id == "minilm-l6"


def test_bf16_stays_close_to_fp32(minilm, minilm_bf16):
    assert minilm_bf16.model.dtype == torch.bfloat16 and minilm.model.dtype == torch.float32
    fast = minilm_bf16.encode(TEXTS, batch_size=4)
    exact = minilm.encode(TEXTS, batch_size=4)
    assert fast.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    assert (fast * exact).sum(axis=1).min() >= 0.995
    query = minilm_bf16.encode(["I forgot my password"])
    assert int(np.argmax(fast @ query[0])) == 0


def test_precision_is_checked():
    with pytest.raises(ValueError, match="precision"):
        Embedder("minilm-l6", precision="int4")


def test_vectors_are_normalised_and_order_restored(minilm):
    batched = minilm.encode(TEXTS, batch_size=3)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    one_by_one = np.stack([minilm.encode([t])[0] for t in TEXTS[:6]])
    np.testing.assert_allclose(batched[:6], one_by_one, atol=1e-5)
    # Meaning survives: the password question is closest to its paraphrase.
    query = minilm.encode(["I forgot my password"])
    assert int(np.argmax(batched @ query[0])) == 0


def test_empty_and_invalid_input(tiny):
    empty = tiny.encode([])
    assert empty.shape == (0, 32) and empty.dtype == np.float32
    with pytest.raises(TypeError, match="wrap a single text in a list"):
        tiny.encode("a single string")
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        tiny.encode(["ok", 3])
    with pytest.raises(ValueError, match="batch_size"):
        tiny.encode(["ok"], batch_size=0)
    with pytest.raises(ValueError, match="max_length=1000"):
        Embedder(tiny.model_id, max_length=1000)


def test_plain_hf_directory_defaults_and_unnormalised_output(tiny_encoder_dir, tiny):
    # No sentence-transformers files: mean pooling, limit = min(tokenizer 512, positions 128).
    assert tiny.max_length == 128 and tiny.pooling == ("mean",) and tiny.dim == 32
    raw = Embedder(str(tiny_encoder_dir), normalize=False, precision="fp32").encode(TEXTS, batch_size=5)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-3)
    np.testing.assert_allclose(
        raw / np.linalg.norm(raw, axis=1, keepdims=True), tiny.encode(TEXTS), atol=1e-5
    )
    # Mean pooling by hand, one text at a time (no padding involved).
    model, tok = models.load_encoder(str(tiny_encoder_dir))
    with torch.inference_mode():
        enc = tok([TEXTS[4]], return_tensors="pt")
        manual = model(**enc).last_hidden_state[0].mean(dim=0).numpy()
    np.testing.assert_allclose(raw[4], manual, atol=1e-5)


def test_reads_sentence_transformers_config(tmp_path, tiny_encoder_dir):
    model_dir = tmp_path / "cls-model"
    shutil.copytree(tiny_encoder_dir, model_dir)
    (model_dir / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 8}))
    (model_dir / "1_Pooling").mkdir()
    (model_dir / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    embedder = Embedder(str(model_dir), normalize=False, precision="fp32")
    assert embedder.max_length == 8 and embedder.pooling == ("cls",)
    text = "a sentence that is clearly longer than eight tokens in total"
    model, tok = models.load_encoder(str(model_dir))
    with torch.inference_mode():
        enc = tok([text], truncation=True, max_length=8, return_tensors="pt")
        expected = model(**enc).last_hidden_state[0, 0].numpy()
    np.testing.assert_allclose(embedder.encode([text])[0], expected, atol=1e-5)

    (model_dir / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": ["mean", "max"]}))
    assert read_pooling_modes(model_dir) == ("mean", "max")
    assert Embedder(str(model_dir)).dim == 64
    (model_dir / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "weightedmean"}))
    with pytest.raises(ValueError, match="unsupported pooling mode"):
        read_pooling_modes(model_dir)


def test_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert pool(hidden, mask, ("mean",)).tolist() == [[2.0, 3.0]]
    assert pool(hidden, mask, ("max",)).tolist() == [[3.0, 4.0]]
    assert pool(hidden, mask, ("lasttoken",)).tolist() == [[3.0, 4.0]]
    assert pool(hidden, mask, ("cls", "mean")).tolist() == [[1.0, 2.0, 2.0, 3.0]]


def test_from_model_wraps_a_lora_encoder(tiny_encoder_dir, tiny):
    from peft import LoraConfig, get_peft_model

    base, tok = models.load_encoder(str(tiny_encoder_dir), fresh=True)
    lora = get_peft_model(base, LoraConfig(r=4, target_modules=["query", "value"]))
    lora.train()
    embedder = Embedder.from_model(lora, tok, model_id="tiny+lora", max_length=64)
    assert embedder.model_id == "tiny+lora" and embedder.dim == 32
    # LoRA starts as the identity (B = 0), and eval mode disables dropout: same vectors as the base.
    np.testing.assert_allclose(embedder.encode(TEXTS[:5]), tiny.encode(TEXTS[:5]), atol=1e-5)
    assert lora.training  # restored after encode
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.add_(0.5)
    assert not np.allclose(embedder.encode(TEXTS[:5]), tiny.encode(TEXTS[:5]), atol=1e-3)


def test_progress_bar(tiny, capsys):
    tiny.encode(TEXTS, batch_size=4, show_progress_bar=True)
    assert "Embedding" in capsys.readouterr().err
    tiny.encode(TEXTS, batch_size=4)  # short input: no bar by default
    assert "Embedding" not in capsys.readouterr().err


class _Counting:
    """The real embedder, counting the texts that reach it."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.seen: list[str] = []

    def encode(self, texts, batch_size=64, show_progress_bar=None):
        self.seen += list(texts)
        return self.inner.encode(texts, batch_size, show_progress_bar)

    @property
    def dim(self) -> int:
        return self.inner.dim


def test_cached_encoder_encodes_each_text_once_and_stays_bounded(tiny):
    from core.embeddings import CachedEncoder

    counting = _Counting(tiny)
    cached = CachedEncoder(counting, max_texts=4)
    first = cached.encode(TEXTS[:3])
    np.testing.assert_allclose(first, tiny.encode(TEXTS[:3]), atol=1e-6)
    again = cached.encode([TEXTS[2], TEXTS[0], TEXTS[2], TEXTS[4]])
    assert counting.seen == TEXTS[:3] + [TEXTS[4]]  # only the new text reached the encoder
    np.testing.assert_array_equal(again[0], first[2])
    assert cached.encode([]).shape == (0, tiny.dim) and cached.dim == tiny.dim
    cached.encode(TEXTS[5:8])  # past max_texts: the cache starts over
    cached.encode([TEXTS[0]])
    assert counting.seen[-1] == TEXTS[0]
