from pathlib import Path

import pytest

from core import models


def test_default_models_resolve_from_installed_packages():
    rows = {row["name"]: row for row in models.list_models()}
    assert rows["smollm2-135m-instruct"]["status"] == "installed"
    assert rows["smollm2-135m-instruct"]["path"].endswith(".gguf")
    assert rows["minilm-l6"]["status"] == "installed"
    assert (Path(rows["minilm-l6"]["path"]) / "model.safetensors").is_file()


def test_aliases_and_local_dirs(tiny_encoder_dir):
    assert models.resolve("sentence-transformers/all-MiniLM-L6-v2").name == "minilm-l6"
    local = models.resolve(str(tiny_encoder_dir))
    assert local.source == "local" and local.gguf_file is None
    model, tok = models.load_encoder(str(tiny_encoder_dir))
    assert model.config.hidden_size == 32 and tok("hello")["input_ids"][0] == tok.cls_token_id


def test_missing_models_explain_how_to_get_them(tmp_path):
    with pytest.raises(models.ModelNotFoundError, match="does not exist"):
        models.resolve(str(tmp_path / "nope" / "model"))
    with pytest.raises(models.ModelNotFoundError, match="AIGC_ALLOW_DOWNLOAD"):
        models.load_encoder("some-org/not-a-cached-model")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(models.ModelNotFoundError, match="does not hold a loadable model"):
        models.load_encoder(str(empty))


def test_packaged_smollm_loads_and_generates():
    model, tok = models.load_causal_lm("smollm2-135m-instruct")
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    enc = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    text = tok.decode(out[0][enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in text
    # Cached per process: the second call returns the same instance, fresh=True a new one.
    assert models.load_causal_lm("smollm2-135m-instruct")[0] is model
    # The GGUF file was materialised once into plain safetensors.
    assert (models.model_path("smollm2-135m-instruct") / "model.safetensors").is_file()


def test_packaged_minilm_encodes():
    import torch

    model, tok = models.load_encoder("minilm-l6")
    with torch.inference_mode():
        hidden = model(**tok(["a sentence"], return_tensors="pt")).last_hidden_state
    assert hidden.shape[-1] == 384


@pytest.mark.skipif(
    models.model_archives.state(models.MPNET_ARCHIVE) == "missing",
    reason="mpnet-base's five part packages are not installed: pip install -e '.[accurate]'",
)
def test_mpnet_base_from_the_accurate_extra_embeds_paraphrases_close():
    from core.embeddings import Embedder

    assert models.resolve("sentence-transformers/all-mpnet-base-v2").name == "mpnet-base"
    embedder = Embedder("mpnet-base", precision="fp32")
    vectors = embedder.encode(
        [
            "The company reported a sharp rise in quarterly profit.",
            "Quarterly earnings at the firm increased strongly.",
            "The cat is asleep on the warm windowsill.",
        ]
    )
    assert vectors.shape == (3, 768)
    paraphrase, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert paraphrase > unrelated + 0.3, (paraphrase, unrelated)
    assert {row["name"]: row for row in models.list_models()}["mpnet-base"]["status"] == "installed"
