"""`aigc recommend train` and `aigc recommend eval`: fit the model, or evaluate it against baselines."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from core.console import console, exit_on_error

if TYPE_CHECKING:
    from apps.recommender.config import RecommenderConfig
    from apps.recommender.interactions import Dataset

app = typer.Typer()

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="YAML settings (default: configs/recommender.yaml).")
]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="Override one setting, e.g. --set finetune.epochs=1.")
]
MovieLensOption = Annotated[
    Path | None, typer.Option("--movielens", help="A MovieLens folder (ml-latest-small or ml-100k).")
]
ItemsOption = Annotated[Path | None, typer.Option("--items", help="Items table (CSV/TSV/Parquet).")]
InteractionsOption = Annotated[
    Path | None, typer.Option("--interactions", help="Interactions table (CSV/TSV/Parquet).")
]


def _input_errors() -> tuple[type[BaseException], ...]:
    from apps.recommender.errors import DataError
    from core.config import ConfigError

    return (DataError, ConfigError, FileNotFoundError, ValueError)


def load_data(
    movielens: Path | None,
    items: Path | None,
    interactions: Path | None,
    config: RecommenderConfig,
    use_tags: bool = True,
) -> Dataset:
    """The dataset of ``--movielens DIR`` (any known folder layout) or ``--items`` + ``--interactions``.

    ``use_tags=False`` leaves an ml-latest folder's user tags (``tags.csv``) out of the item text.

    Raises:
        ValueError: Both sources or neither given.
    """
    from apps.recommender.interactions import load_dataset
    from apps.recommender.public_datasets import load_folder

    if movielens is not None and (items is not None or interactions is not None):
        raise ValueError("give either --movielens DIR or --items FILE --interactions FILE, not both")
    if movielens is not None:
        return load_folder(movielens, config.data, use_tags)
    if items is None or interactions is None:
        raise ValueError("give --movielens DIR, or both --items FILE and --interactions FILE")
    return load_dataset(items, interactions, config.data)


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="Model directory to write (replaced atomically).")],
    movielens: MovieLensOption = None,
    items: ItemsOption = None,
    interactions: InteractionsOption = None,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Fine-tune the encoder (finetune.method), index the items, train the ranker; save the model."""
    from apps.recommender.config import load_settings
    from apps.recommender.pipeline import train_model

    with exit_on_error(*_input_errors()):
        settings = load_settings(config, set_)
        dataset = load_data(movielens, items, interactions, settings)
        model = train_model(dataset, out, settings, show_progress_bar=True)
    console.print(f"[green]model saved[/] to {escape(str(out))}")
    encoder = model.metrics.get("encoder")
    if encoder:
        val = encoder["validation_text_only"]
        console.print(
            "encoder fine-tuning, text-only validation NDCG@10: "
            f"frozen {val['frozen']['ndcg@10']:.4f} -> fine-tuned {val['fine_tuned']['ndcg@10']:.4f}"
        )


@app.command("eval")
def eval_(
    movielens: MovieLensOption = None,
    items: ItemsOption = None,
    interactions: InteractionsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the JSON report here.")] = None,
    models: Annotated[
        str | None, typer.Option(help="Comma-separated models (default: all baselines, text_ft, hybrid).")
    ] = None,
    max_users: Annotated[int | None, typer.Option(help="Evaluate a seeded sample of users.")] = None,
    cold_start: Annotated[bool, typer.Option(help="Also run the cold-start protocol.")] = True,
    tags: Annotated[
        bool,
        typer.Option(
            help="ml-latest: put users' tags (tags.csv) into the item text. Off by default: tags carry no "
            "time cut, so many were applied after the held-out interactions they would help predict."
        ),
    ] = False,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Evaluate the hybrid and the baselines: last interaction per user held out, full ranking."""
    import json

    from apps.recommender.config import load_settings
    from apps.recommender.pipeline import MODELS, evaluate_models
    from core.config import write_json_atomic

    with exit_on_error(*_input_errors()):
        overrides = list(set_ or []) + ([f"eval.max_users={max_users}"] if max_users is not None else [])
        settings = load_settings(config, overrides)
        names = tuple(n.strip() for n in models.split(",") if n.strip()) if models else MODELS
        dataset = load_data(movielens, items, interactions, settings, use_tags=tags)
        report = evaluate_models(dataset, settings, names, cold_start, show_progress_bar=not as_json)
        report["protocol"]["user_tags"] = tags
    if out is not None:
        write_json_atomic(out, report)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table(title="Next-item evaluation (last interaction per user)")
    keys = ("hr@10", "ndcg@10", "recall@50", "mrr", "coverage")
    for column in ("model", *keys):
        table.add_column(column)
    for name, result in report["models"].items():
        table.add_row(name, *(f"{result[k]:.4f}" for k in keys))
    console.print(table)
    for name, result in report.get("cold_start", {}).get("models", {}).items():
        console.print(f"cold start {name}: recall@50 {result['recall@50']}", markup=False)
