"""``aigc finance train / eval / classify``: the sentiment and topic classifiers.

Each command parses its options and calls a plain function (:func:`~apps.finance_monitor.classifiers.train`,
:func:`~apps.finance_monitor.classifiers.evaluate`, :func:`~apps.finance_monitor.scoring.classify_file`);
bad input prints one line naming the file, row and field, and exits with status 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from apps.finance_monitor.cli.options import ConfigOption, SetOption, command_errors, config_path
from apps.finance_monitor.presets import DEFAULT_PRESET
from core.console import console

app = typer.Typer()


@app.command("train")
def train_cmd(
    task: Annotated[str, typer.Option("--task", help="sentiment or topic.")],
    data: Annotated[Path, typer.Option("--data", help="CSV/Parquet/JSONL (text,label) or PhraseBank file.")],
    out: Annotated[Path, typer.Option("--out", help="Model directory to write.")],
    label_map: Annotated[
        str | None,
        typer.Option(
            "--label-map", help="Numeric labels: '0=negative,1=positive', tfns, tfn-topic or a classes file."
        ),
    ] = None,
    preset: Annotated[
        str,
        typer.Option(
            "--preset",
            help="fast (MiniLM, LoRA), accurate (mpnet-base fully fine-tuned; make accurate) or "
            "accurate-ensemble (accurate x3, refitted, averaged); applied over --config, under --set.",
        ),
    ] = DEFAULT_PRESET,
    confidence_column: Annotated[
        str | None,
        typer.Option(
            "--confidence-column",
            help="Column of each row's label confidence, e.g. the share of annotators who chose it "
            "(1/k..1): trains towards that probability instead of 1.",
        ),
    ] = None,
    ensemble_seeds: Annotated[
        str | None,
        typer.Option(
            "--ensemble-seeds",
            help="Comma-separated seeds, e.g. 42,7,1234: train one model per seed and average their "
            "probabilities (scoring costs one pass per model).",
        ),
    ] = None,
    refit: Annotated[
        bool,
        typer.Option(
            "--refit",
            help="Choose epochs and temperatures on the validation split, then train on every row "
            "(one extra run).",
        ),
    ] = False,
    teacher: Annotated[
        Path | None,
        typer.Option(
            "--teacher",
            help="Distil: a trained model (e.g. an accurate ensemble) whose probabilities on the "
            "training rows join the labels as targets; the student scores at its own speed.",
        ),
    ] = None,
    transfer: Annotated[
        Path | None,
        typer.Option(
            "--transfer",
            help="With --teacher: a file of unlabelled in-domain texts (column 'text') that the "
            "teacher labels for the student to learn from as well; never used for validation.",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue a killed run of the same command (same data and settings): finished "
            "ensemble members are kept, an unfinished model continues from its last epoch.",
        ),
    ] = False,
    config: ConfigOption = None,
    overrides: SetOption = None,
) -> None:
    """Fine-tune a sentiment or topic classifier and calibrate it on its validation split."""
    from apps.finance_monitor.classifiers import train
    from apps.finance_monitor.config import load_train_config
    from core.finetune import with_overrides

    with command_errors():
        seeds = _parse_seeds(ensemble_seeds) if ensemble_seeds is not None else None
        cfg = load_train_config(config_path(config), overrides or [], preset=preset)
        extra = {
            **({"ensemble_seeds": seeds} if seeds else {}),
            **({"refit": True} if refit else {}),
            **({"teacher": str(teacher)} if teacher is not None else {}),
            **({"transfer": str(transfer)} if transfer is not None else {}),
        }
        cfg = with_overrides(cfg, extra) if extra else cfg
        report = train(
            task,
            data,
            out,
            label_map=label_map,
            config=cfg,
            confidence_column=confidence_column,
            resume=resume,
        )
    val = report.get("best_metric")
    shown = "n/a" if val is None else f"{val:.4f}"
    kind = "model"
    if "ensemble" in report:
        n = len(report["ensemble"]["seeds"])
        kind = f"ensemble of {n}" + (" refitted" if report["ensemble"]["refit"] else "")
    if "teacher" in report:
        kind += f" distilled from {report['teacher']['model_version']}"
        if "transfer" in report["teacher"]:
            kind += f" (+{report['teacher']['transfer']['rows']} transfer texts)"
    console.print(
        f"[green]trained[/] {task} {kind} -> {escape(str(out))} "
        f"(version {escape(str(report['model_version']))}, "
        f"validation {report['metric']} {shown}, {report['wall_time_s']:.0f}s)"
    )


def _parse_seeds(text: str) -> tuple[int, ...]:
    """``"42,7,1234"`` as seeds (a repeated seed is refused by the training settings).

    Raises:
        ValueError: Not comma-separated whole numbers (one error line, exit 2).
    """
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(
            f"--ensemble-seeds {text!r}: give comma-separated whole numbers, e.g. 42,7,1234"
        ) from None


@app.command("eval")
def eval_cmd(
    model: Annotated[Path, typer.Option("--model", help="Model directory.")],
    data: Annotated[Path, typer.Option("--data", help="Labelled file (same formats as train).")],
    label_map: Annotated[
        str | None, typer.Option("--label-map", help="Numeric label map (default: the model's).")
    ] = None,
    head: Annotated[str | None, typer.Option("--head", help="Head of a two-head model.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON on stdout.")] = False,
) -> None:
    """Accuracy, macro/weighted F1, per-class scores and confusion matrix on a labelled file."""
    from apps.finance_monitor.classifiers import evaluate

    with command_errors():
        report = evaluate(model, data, head=head, label_map=label_map, show_progress_bar=not as_json)
    if as_json:
        typer.echo(
            json.dumps(
                {k: report[k] for k in ("accuracy", "macro_f1", "weighted_f1", "per_class", "confusion")}
            )
        )
        return
    console.print(
        f"n={report['n']}  accuracy {report['accuracy']:.4f}  macro F1 {report['macro_f1']:.4f}  "
        f"weighted F1 {report['weighted_f1']:.4f}"
    )


@app.command("classify")
def classify_cmd(
    model: Annotated[Path, typer.Option("--model", help="Model directory.")],
    input_path: Annotated[Path, typer.Option("--input", help="CSV/TSV/Parquet/JSONL/TXT of texts.")],
    out: Annotated[Path, typer.Option("--out", help="Output .csv, .jsonl or .parquet.")],
    text_column: Annotated[str | None, typer.Option("--text-column", help="Column of the texts.")] = None,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 64,
) -> None:
    """Label every row of a file (in batches, with a progress bar); the output is written atomically."""
    from apps.finance_monitor.scoring import classify_file

    with command_errors():
        rows = classify_file(model, input_path, out, text_column=text_column, batch_size=batch_size)
    console.print(f"[green]classified[/] {rows} rows -> {escape(str(out))}")
