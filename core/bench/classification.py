"""``aigc bench classification``: items/s of :class:`TextClassifier` vs a transformers pipeline.

Both sides run the same fine-tuned weights (a LoRA MiniLM sentiment classifier trained on the Financial
PhraseBank, merged): the project's ``TextClassifier.from_pretrained(...).predict`` (bf16 on a CPU with
fast bf16, batches sorted by token count) and ``pipeline("text-classification")`` over a transformers model
wrapping the same encoder and head (fp32), same batch size. Items are real texts of mixed length.
Reports items/s, the ratio, and how often the labels agree.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from core.bench.data import mixed_sentences, phrasebank
from core.bench.harness import alternate, environment, markdown_table, ratio, write_results

logger = logging.getLogger(__name__)

BATCH_SIZE = 64


def fine_tuned_classifier(directory: Path, samples: int = 800) -> Path:
    """A LoRA sentiment classifier on MiniLM, trained once on the PhraseBank (cached in ``directory``)."""
    if (directory / "config.json").is_file():
        return directory
    from core.finetune import train_classifier

    texts, labels = phrasebank()
    order = np.random.default_rng(0).permutation(len(texts))[:samples]
    rows = [(texts[i], labels[i]) for i in order]
    train_classifier(rows, directory, epochs=1, val_fraction=0.1, show_progress_bar=False, patience=0)
    return directory


def pipeline_peer(directory: Path) -> Any:
    """``pipeline("text-classification")`` over a transformers model holding the classifier's fp32 weights."""
    from transformers import PreTrainedModel, pipeline
    from transformers.modeling_outputs import SequenceClassifierOutput

    from core.classification import TextClassifier

    clf = TextClassifier.from_pretrained(directory, precision="fp32")
    head_name = clf.head_names[0]
    labels = clf.labels(head_name)
    config = clf.encoder.config.__class__.from_dict(clf.encoder.config.to_dict())
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}

    class MeanPoolClassifier(PreTrainedModel):
        config_class = type(config)
        base_model_prefix = "encoder"

        def __init__(self, cfg: Any) -> None:
            super().__init__(cfg)
            self.encoder = clf.encoder
            self.head = clf.heads[head_name]

        def forward(self, input_ids=None, attention_mask=None, **_: Any) -> SequenceClassifierOutput:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return SequenceClassifierOutput(logits=self.head(pooled))

    model = MeanPoolClassifier(config).eval()
    return pipeline(
        "text-classification", model=model, tokenizer=clf.tokenizer, device=-1, batch_size=BATCH_SIZE
    ), clf.max_length


def run(reps: int = 5, quick: bool = False, out: str | Path | None = None) -> dict[str, Any]:
    """Run the classification benchmark; returns the result dict (also written to ``out``)."""
    from core.classification import TextClassifier
    from core.paths import cache_dir

    directory = fine_tuned_classifier(cache_dir() / "bench" / "fpb-sentiment-lora", 300 if quick else 800)
    n = 200 if quick else 5_000
    texts = mixed_sentences(n, seed=1)
    project = TextClassifier.from_pretrained(directory)
    pipe, max_length = pipeline_peer(directory)
    contestants = {
        "project": lambda: project.predict(texts, batch_size=BATCH_SIZE),
        "pipeline": lambda: [
            r["label"] for r in pipe(texts, batch_size=BATCH_SIZE, truncation=True, max_length=max_length)
        ],
    }
    timings = alternate(contestants, reps=reps, warmup=1, label="classification")
    pairs = zip(timings.outputs["project"], timings.outputs["pipeline"], strict=True)
    same = float(np.mean([a == b for a, b in pairs]))
    rates = {name: round(n / timings.median(name), 1) for name in contestants}
    result: dict[str, Any] = {
        "bench": "classification",
        "model": "minilm-l6 + LoRA (Financial PhraseBank sentiment)",
        "items": n,
        "batch_size": BATCH_SIZE,
        "reps": reps,
        "project_precision": str(next(project.encoder.parameters()).dtype).removeprefix("torch."),
        "items_per_s": rates,
        "seconds_median": {name: round(timings.median(name), 3) for name in contestants},
        "ratio_vs_pipeline": ratio(rates["project"], rates["pipeline"]),
        "same_label": round(same, 4),
        "env": environment(),
        "skipped": {},
    }
    table = markdown_table(
        ["contestant", "items/s", "median s"],
        [["project TextClassifier", rates["project"], result["seconds_median"]["project"]],
         ["transformers pipeline", rates["pipeline"], result["seconds_median"]["pipeline"]]],
    )  # fmt: skip
    head = (
        f"### Classification ({n} real texts, batch {BATCH_SIZE}): ratio {result['ratio_vs_pipeline']}x, "
        f"same label on {100 * same:.2f}% of items\n\n"
    )
    write_results("classification", result, head + table, out)
    return result
