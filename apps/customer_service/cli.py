"""`aigc support` commands."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

logger = logging.getLogger(__name__)
console = Console(stderr=True)

app = typer.Typer(
    help=(
        "Customer service: A retrieval-augmented support bot that answers agents' questions from the "
        "knowledge base, cites its sources and hands off to a human when unsure."
    ),
    no_args_is_help=True,
)

KBDirOption = Annotated[
    Path | None,
    typer.Option("--kb-dir", help="Knowledge-base directory (default: $AIGC_DATA_DIR/support/kb)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout.")]


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    address: Annotated[str, typer.Option(help="Address to bind.")] = "localhost",
) -> None:
    """Start only this app's Streamlit pages."""
    from core.cli import launch_ui

    raise typer.Exit(launch_ui(["support"], port, address))


@app.command("index")
def index(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="FAQ files (.csv/.json/.jsonl), documents (.md/.txt) or folders of documents. "
            "Prefix KIND: to name the kind, e.g. dialogue:past.jsonl (kinds: faq, doc, dialogue)."
        ),
    ],
    kb_dir: KBDirOption = None,
    dialogues: Annotated[
        list[Path] | None, typer.Option("--dialogues", help="JSONL of past question -> best answer pairs.")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Build setting, e.g. chunking.max_chars=500 or embedding_model=minilm-l6."
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Build or update a knowledge base: unchanged entries keep their vectors, the swap is atomic."""
    from apps.customer_service.knowledge_base import KBConfig, KnowledgeBase, default_kb_dir
    from core.config import load_config

    config = load_config(KBConfig, overrides=overrides or [])
    all_sources = list(sources) + [f"dialogue:{path}" for path in dialogues or []]
    target = kb_dir or default_kb_dir()
    kb = KnowledgeBase.build(all_sources, target, config, show_progress_bar=progress)
    report = kb.last_build
    if as_json:
        typer.echo(json.dumps({**kb.stats(), "path": str(target), "last_build": asdict(report)}, indent=2))
        return
    counts = kb.manifest["counts"]
    console.print(
        f"[green]Indexed {counts['entries']} entries[/] (faq {counts['faq']}, doc {counts['doc']}, "
        f"dialogue {counts['dialogue']}) into {target}\n"
        f"added {report.added}, updated {report.updated}, removed {report.removed}, "
        f"unchanged {report.unchanged}; embedded {report.embedded} texts in {report.seconds:.1f} s"
    )


@app.command("eval")
def evaluate(
    queries: Annotated[
        Path, typer.Option("--queries", help="CSV with query,gold_ids (ids separated by ';').")
    ],
    kb_dir: KBDirOption = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Retrieval setting, e.g. fusion=rrf or dense_weight=0.5."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Score BM25, dense and hybrid retrieval (recall@1/3/5/10, hit@k, MRR@10) on labelled queries."""
    from apps.customer_service.evaluation import evaluate_retrieval
    from apps.customer_service.knowledge_base import default_kb_dir
    from apps.customer_service.retrieval import RetrievalConfig
    from core.config import load_config

    config = load_config(RetrievalConfig, overrides=overrides or [])
    results = evaluate_retrieval(kb_dir or default_kb_dir(), queries, config)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
        return
    first = next(iter(results.values()))
    table = Table(title=f"Retrieval on {queries} ({first['queries']} queries)")
    table.add_column("metric")
    for mode in results:
        table.add_column(mode, justify="right")
    for metric in (key for key in first if key != "queries"):
        table.add_row(metric, *(f"{results[mode][metric]:.3f}" for mode in results))
    Console().print(table)
