"""`aigc recommend` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from core.console import console, print_error

app = typer.Typer(
    help=(
        "Recommender: a behaviour-tuned text encoder, FAISS candidates and a learned ranker "
        "score top-k items per user in batch jobs."
    ),
    no_args_is_help=True,
)


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    address: Annotated[str, typer.Option(help="Address to bind.")] = "localhost",
) -> None:
    """Start only this app's Streamlit pages."""
    from core.cli import launch_ui

    raise typer.Exit(launch_ui(["recommend"], port, address))


from apps.recommender import cli_batch  # noqa: E402

app.registered_commands += cli_batch.app.registered_commands


DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "recommender.yaml"
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


def _fail(err: BaseException) -> typer.Exit:
    print_error(err)
    return typer.Exit(code=2)


def _load(config_path: Path | None, overrides: list[str] | None):
    from apps.recommender.pipeline import RecommenderConfig
    from core.config import load_config

    path = config_path if config_path is not None else (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    return load_config(RecommenderConfig, path, overrides or [])


def _dataset(movielens: Path | None, items: Path | None, interactions: Path | None, config):
    from apps.recommender.data import load_dataset
    from apps.recommender.formats import load_folder

    if movielens is not None and (items is not None or interactions is not None):
        raise ValueError("give either --movielens DIR or --items FILE --interactions FILE, not both")
    if movielens is not None:
        return load_folder(movielens, config.data)
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
    """Fine-tune the encoder (LoRA, contrastive), index the items, train the ranker; save the model."""
    from apps.recommender.errors import DataError
    from apps.recommender.pipeline import train_model
    from core.config import ConfigError

    try:
        settings = _load(config, set_)
        dataset = _dataset(movielens, items, interactions, settings)
        model = train_model(dataset, out, settings, show_progress_bar=True)
    except (DataError, ConfigError, FileNotFoundError, ValueError) as err:
        raise _fail(err) from None
    console.print(f"[green]model saved[/] to {out}")
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
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Evaluate the hybrid and the baselines: last interaction per user held out, full ranking."""
    import json

    from apps.recommender.errors import DataError
    from apps.recommender.pipeline import MODELS, evaluate_models
    from core.config import ConfigError, write_json_atomic

    try:
        overrides = list(set_ or []) + ([f"eval.max_users={max_users}"] if max_users is not None else [])
        settings = _load(config, overrides)
        names = tuple(n.strip() for n in models.split(",") if n.strip()) if models else MODELS
        dataset = _dataset(movielens, items, interactions, settings)
        report = evaluate_models(dataset, settings, names, cold_start, show_progress_bar=not as_json)
    except (DataError, ConfigError, FileNotFoundError, ValueError) as err:
        raise _fail(err) from None
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
        console.print(f"cold start {name}: recall@50 {result['recall@50']}")
