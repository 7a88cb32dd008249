"""`aigc support` commands that train and score models: intents and the answer model.

Joined into ``aigc support`` by :mod:`apps.customer_service.cli`. Each command parses its options and
calls one function of :mod:`~apps.customer_service.intents` or :mod:`~apps.customer_service.answer_tuning`;
bad input exits with code 2 and one line (:func:`core.console.exit_on_error`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from apps.customer_service.cli.options import JsonOption
from apps.customer_service.errors import KBFormatError, SourceError
from core.config import ConfigError
from core.console import console, exit_on_error, fail
from core.console import out as out_console

logger = logging.getLogger(__name__)

SAMPLE_INTENTS = Path(__file__).resolve().parents[1] / "sample_data" / "intents.csv"

app = typer.Typer(no_args_is_help=True)
T = TypeVar("T")
#: Bad input: one error line and exit code 2.
INPUT_ERRORS = (FileNotFoundError, SourceError, KBFormatError, ConfigError, ValueError)

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Training setting, e.g. epochs=5, lr=5e-4, lora.r=16 (repeatable)."),
]


def _overrides(items: list[str] | None) -> dict[str, Any]:
    from core.config import apply_overrides

    return apply_overrides({}, items or [])


def _train_config(cls: type[T], items: list[str] | None, **defaults: Any) -> T:
    from core.config import from_dict, to_dict

    base = {**to_dict(cls()), **defaults}
    nested = _overrides(items)
    for key, value in nested.items():  # merge one level deep, so --set lora.r=16 keeps lora's other fields
        base[key] = (
            {**base[key], **value} if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        )
    return from_dict(cls, base)


@app.command("train-intents")
def train_intents_cmd(
    data: Annotated[
        Path, typer.Option("--data", help="CSV of labelled utterances (default: the shipped sample).")
    ] = SAMPLE_INTENTS,
    out: Annotated[
        Path | None, typer.Option("--out", help="Model directory (default: $AIGC_DATA_DIR/support/intents).")
    ] = None,
    model: Annotated[
        str, typer.Option("--model", help="Encoder: minilm-l6 or a local HF directory.")
    ] = "minilm-l6",
    text_column: Annotated[str, typer.Option(help="Column of the utterances.")] = "text",
    label_column: Annotated[str, typer.Option(help="Column of the intent labels.")] = "label",
    overrides: SetOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fine-tune the intent classifier (MiniLM + LoRA) on a CSV of text,label rows."""
    from apps.customer_service.intents import default_intent_dir, train_intents
    from core.finetune import ClassifierTrainConfig

    target = out or default_intent_dir()

    with exit_on_error(*INPUT_ERRORS):
        config = _train_config(ClassifierTrainConfig, overrides)
        report = train_intents(
            data, target, model, config, text_column=text_column, label_column=label_column
        )
    if as_json:
        keys = ("best_metric", "metric", "best_epoch", "epochs_run", "train_size", "val_size", "wall_time_s")
        typer.echo(json.dumps({**{k: report.get(k) for k in keys}, "labels": report["labels"],
                               "output_dir": str(target)}, indent=2))  # fmt: skip
        return
    console.print(
        f"[green]Trained intent classifier[/] on {report['train_size']} utterances, "
        f"{len(report['labels'])} intents: validation {report['metric']} {report['best_metric']:.3f} "
        f"(epoch {report['best_epoch']}) in {report['wall_time_s']:.0f} s -> {escape(str(target))}"
    )


@app.command("eval-intents")
def eval_intents_cmd(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="Labelled CSV to score on (default: the model's held-out validation split)."
        ),
    ] = None,
    model_dir: Annotated[
        Path | None,
        typer.Option("--model-dir", help="Model directory (default: $AIGC_DATA_DIR/support/intents)."),
    ] = None,
    text_column: Annotated[str, typer.Option(help="Column of the utterances.")] = "text",
    label_column: Annotated[str, typer.Option(help="Column of the intent labels.")] = "label",
    per_label: Annotated[
        bool, typer.Option("--per-label", help="Add per-intent precision/recall/F1.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Accuracy and macro-F1 of the intent classifier on labelled utterances."""
    from apps.customer_service.intents import evaluate_intents

    with exit_on_error(*INPUT_ERRORS):
        result = evaluate_intents(model_dir, data, text_column, label_column, per_label=per_label)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    table = Table(title=f"Intents on {result['data']} ({result['examples']} utterances)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("accuracy", "macro_f1", "weighted_f1"):
        table.add_row(key, f"{result[key]:.3f}")
    out_console.print(table)
    if result["unknown_labels"]:
        console.print(f"[yellow]Labels the model does not know:[/] {escape(str(result['unknown_labels']))}")


@app.command("finetune")
def finetune_cmd(
    pairs: Annotated[Path, typer.Option("--pairs", help="CSV/JSON/JSONL of past question,answer pairs.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Adapter directory (default: $AIGC_DATA_DIR/support/answer-adapter)."),
    ] = None,
    model: Annotated[str, typer.Option("--model", help="Base answer model.")] = "smollm2-135m-instruct",
    heldout: Annotated[
        float, typer.Option("--heldout", help="Share of pairs kept out for eval-answers.")
    ] = 0.1,
    overrides: SetOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train a LoRA adapter of the answer model on past question -> answer pairs (loss on answers only)."""
    from apps.customer_service.answer_tuning import (
        SUPPORT_SYSTEM_PROMPT,
        default_adapter_dir,
        finetune_answers,
    )
    from core.finetune import CausalLMTrainConfig

    target = out or default_adapter_dir()

    with exit_on_error(*INPUT_ERRORS):
        config = _train_config(CausalLMTrainConfig, overrides, system_prompt=SUPPORT_SYSTEM_PROMPT)
        report = finetune_answers(pairs, target, model, heldout, config)
    if as_json:
        keys = ("pairs", "heldout", "heldout_file", "best_metric", "metric", "best_epoch", "wall_time_s")
        typer.echo(json.dumps({**{k: report.get(k) for k in keys}, "output_dir": str(target)}, indent=2))
        return
    console.print(
        f"[green]Trained answer adapter[/] on {report['train_size']} pairs ({report['heldout']} held out) "
        f"in {report['wall_time_s']:.0f} s -> {escape(str(target))}\n"
        f"Compare before/after: aigc support eval-answers --adapter {escape(str(target))}"
    )


@app.command("eval-answers")
def eval_answers_cmd(
    adapter: Annotated[
        Path | None,
        typer.Option(
            "--adapter", help="Adapter from `finetune` (default: $AIGC_DATA_DIR/support/answer-adapter)."
        ),
    ] = None,
    pairs: Annotated[
        Path | None, typer.Option("--pairs", help="Held-out pairs (default: the adapter's heldout.jsonl).")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Score only the first N pairs.")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Longest generated answer.")] = 128,
    as_json: JsonOption = False,
) -> None:
    """Answer quality (ROUGE-L, BLEU) on held-out pairs, before and after fine-tuning."""
    from apps.customer_service.answer_tuning import HELDOUT_FILE, default_adapter_dir, evaluate_answer_model

    adapter_dir = adapter or default_adapter_dir()

    if not adapter_dir.is_dir():
        raise fail(f"adapter directory {adapter_dir} does not exist; run `finetune` first")
    with exit_on_error(*INPUT_ERRORS):
        source = pairs or adapter_dir / HELDOUT_FILE
        result = evaluate_answer_model(source, adapter_dir, max_new_tokens=max_new_tokens, limit=limit)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    table = Table(title=f"Answer quality on {result['pairs']} held-out pairs")
    for column in ("metric", "before", "after", "delta"):
        table.add_column(column, justify="right")
    for key in ("rouge_l", "bleu"):
        table.add_row(
            key, f"{result['before'][key]:.3f}", f"{result['after'][key]:.3f}", f"{result['delta'][key]:+.3f}"
        )
    out_console.print(table)
