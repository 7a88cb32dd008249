"""`aigc support` commands that build, evaluate and serve the knowledge base and the bot.

``ui``, ``index``, ``eval``, ``ask``, ``answering``, ``export-feedback`` and ``calibrate``; joined into
``aigc support`` by :mod:`apps.customer_service.cli`. Each command parses its options and calls one
plain function; bad input exits with code 2 and one line (:func:`core.console.exit_on_error`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from apps.customer_service.cli.options import JsonOption, KBDirOption
from core.auth.audit import AuditAction
from core.auth.cli import record_cli_event
from core.console import console, exit_on_error, fail
from core.console import out as out_console

logger = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True)


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
    adapt: Annotated[
        bool,
        typer.Option(
            "--adapt",
            help="Adapt the encoder to this KB: its LoRA trains on sentences cut from the entries "
            "(adapt.queries=sentences; or questions the answer model writes: generated, both), and the "
            "adapter is kept only if it lifts recall@1 on held-out questions (settings: --set adapt.lr=...).",
        ),
    ] = False,
    judge_questions: Annotated[
        Path | None,
        typer.Option(
            "--judge-questions",
            help="With --adapt: CSV of real questions and their entry ids (query,gold_ids, as for "
            "'aigc support eval'; 'aigc support sample-questions' draws one to label; rows left empty "
            "are skipped) that judge the adapter instead of questions the answer model writes.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Build or update a knowledge base: unchanged entries keep their vectors, the swap is atomic."""
    from apps.customer_service.confidence import build_and_calibrate
    from apps.customer_service.config import KBConfig
    from apps.customer_service.knowledge_base import default_kb_dir
    from core.config import load_config

    if judge_questions is not None and not adapt:
        raise fail("--judge-questions judges an adapter: give it with --adapt")
    config = load_config(KBConfig, overrides=overrides or [])
    if judge_questions is not None:
        config = replace(config, adapt=replace(config.adapt, judge_file=str(judge_questions)))
    all_sources = list(sources) + [f"dialogue:{path}" for path in dialogues or []]
    target = kb_dir or default_kb_dir()
    kb = build_and_calibrate(all_sources, target, config, show_progress_bar=progress, adapt=adapt)
    report = kb.last_build
    record_cli_event(
        AuditAction.KB_REINDEX,
        str(target),
        {"entries": len(kb), "added": report.added, "removed": report.removed},
    )
    if as_json:
        typer.echo(json.dumps({**kb.stats(), "path": str(target), "last_build": asdict(report)}, indent=2))
        return
    counts = kb.manifest["counts"]
    console.print(
        f"[green]Indexed {counts['entries']} entries[/] (faq {counts['faq']}, doc {counts['doc']}, "
        f"dialogue {counts['dialogue']}) into {escape(str(target))}\n"
        f"added {report.added}, updated {report.updated}, removed {report.removed}, "
        f"unchanged {report.unchanged}; embedded {report.embedded} texts in {report.seconds:.1f} s"
    )
    _print_adaptation(kb.manifest.get("adaptation"), adapt)
    if report.calibration == "kept":
        console.print("Answer gate: calibration kept (the entries did not change).")
    elif report.calibration == "recalibrated":
        console.print("Answer gate: recalibrated on the configured labelled queries.")
    else:
        why = (
            "the entries changed, so its calibration was dropped; recalibrate it"
            if report.calibration == "dropped"
            else "not calibrated; calibrate it"
        )
        console.print(
            f"Answer gate: {why}: aigc support calibrate --kb-dir {target}",
            markup=False,
            style="yellow",
        )
    if flagged := kb.stats()["flagged"]:
        ids = ", ".join(f["id"] for f in flagged[:10]) + (" …" if len(flagged) > 10 else "")
        console.print(
            f"{len(flagged)} entries read as instructions to the answer model and will never be "
            f"quoted or sent to it: {ids}",
            markup=False,
            style="yellow",
        )


def _print_adaptation(adaptation: dict | None, asked: bool) -> None:
    """One or two lines on the encoder adaptation of this build (``--adapt``, or carried over)."""
    if not adaptation:
        return
    if not asked:
        console.print(
            f"Encoder: the adapted encoder of the previous build is kept ({adaptation['model_id']}).",
            markup=False,
        )
        return
    seconds = ", ".join(f"{phase} {value:.0f} s" for phase, value in adaptation.get("seconds", {}).items())
    style = "green" if adaptation["kept"] else "yellow"
    console.print(f"Adaptation: {adaptation['reason']}.", markup=False, style=style)
    console.print(
        f"{adaptation['questions_generated']} questions generated, {adaptation['questions_reused']} reused, "
        f"{adaptation['pairs']} training pairs; {seconds}",
        markup=False,
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
    answers: Annotated[
        bool,
        typer.Option(
            "--answers",
            help="Also answer the queries with the bot: ROUGE-L, gold citation and hand-off rates.",
        ),
    ] = False,
    out_of_scope: Annotated[
        Path | None,
        typer.Option("--out-of-scope", help="CSV (query) of questions the KB cannot answer, for --answers."),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Answer at most this many questions per set.")] = None,
) -> None:
    """Score BM25, dense and hybrid retrieval (recall@1/3/5/10, hit@k, MRR@10) on labelled queries.

    With --answers, the bot also answers them (and the --out-of-scope questions); the result gains an
    "answers" section with ROUGE-L, the rate of answers citing a gold id and the hand-off rates.
    """
    from apps.customer_service.config import RetrievalConfig
    from apps.customer_service.knowledge_base import default_kb_dir
    from apps.customer_service.retrieval_eval import evaluate_retrieval
    from core.config import load_config

    config = load_config(RetrievalConfig, overrides=overrides or [])
    results = evaluate_retrieval(kb_dir or default_kb_dir(), queries, config)
    quality = None
    if answers:
        from apps.customer_service.answer_eval import evaluate_bot_answers
        from apps.customer_service.bot import SupportBot

        bot = SupportBot.from_dir(kb_dir or default_kb_dir())
        quality = evaluate_bot_answers(bot, queries, out_of_scope, limit=limit)
    if as_json:
        typer.echo(json.dumps(results | ({"answers": quality} if quality else {}), indent=2))
        return
    if quality:
        out_console.print({key: value for key, value in quality.items()})
    first = next(iter(results.values()))
    table = Table(title=f"Retrieval on {queries} ({first['queries']} queries)")
    table.add_column("metric")
    for mode in results:
        table.add_column(mode, justify="right")
    for metric in (key for key in first if key != "queries"):
        table.add_row(metric, *(f"{results[mode][metric]:.3f}" for mode in results))
    out_console.print(table)


@app.command("ask")
def ask(
    question: Annotated[str | None, typer.Argument(help="The customer's question.")] = None,
    questions_file: Annotated[
        Path | None,
        typer.Option("--questions", help="CSV with a 'question' column: answer every row (one model load)."),
    ] = None,
    kb_dir: KBDirOption = None,
    config_file: Annotated[
        Path | None,
        typer.Option("--config", help="YAML with a 'bot:' section (default configs/customer_service.yaml)."),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Bot setting, e.g. answer.mode=generate or gate.handoff_threshold=0.6."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Answer a question (or every row of --questions) from the knowledge base, with cited sources.

    With --json, prints one JSON object per answer (one per line with --questions): question,
    answer, route, confidence, handoff, and sources (id, title, score, text of the cited passage).
    """
    from apps.customer_service.bot import EmptyQuestionError, SupportBot
    from apps.customer_service.config import load_bot_config
    from apps.customer_service.errors import KBFormatError, SourceError
    from apps.customer_service.knowledge_base import default_kb_dir
    from apps.customer_service.retrieval_eval import read_questions
    from core.config import ConfigError

    if (question is None) == (questions_file is None):
        raise fail("give exactly one of a QUESTION argument and --questions FILE")
    input_errors = (
        EmptyQuestionError,
        ConfigError,
        FileNotFoundError,
        KBFormatError,
        SourceError,
        ValueError,
    )
    with exit_on_error(*input_errors):
        questions = [question] if question is not None else read_questions(questions_file)
        bot = SupportBot.from_dir(kb_dir or default_kb_dir(), load_bot_config(config_file, overrides or []))
    batch = questions_file is not None
    for i, text in enumerate(questions):
        with exit_on_error(*input_errors):
            reply = bot.answer(text)
        if as_json:
            payload = reply.to_json(text if batch else None)
            typer.echo(json.dumps(payload, ensure_ascii=False, indent=None if batch else 2))
            continue
        if batch:
            out_console.print(f"Q{i + 1}: {text}", markup=False)
        _print_answer(reply)


def _print_answer(reply) -> None:  # noqa: ANN001 - an apps.customer_service.bot.Answer
    if reply.notice:
        console.print(reply.notice, markup=False)
    out_console.print(reply.text, markup=False)
    for source in reply.sources:
        out_console.print(
            f"  [{source.id}] {source.title} (score {source.score:.3f})"
            + (f" {source.url}" if source.url else ""),
            markup=False,
        )
    badge = "HAND-OFF to a human agent" if reply.handoff else f"route {reply.route}"
    intent = f", intent {reply.intent}" if reply.intent else ""
    console.print(
        f"{badge}; confidence {reply.confidence:.2f}{intent}; {reply.latency_ms:.0f} ms", markup=False
    )


@app.command("answering")
def answering_cmd(
    mode: Annotated[str, typer.Option("--mode", help="extractive (quote passages) or generate (verified).")],
    kb_dir: KBDirOption = None,
) -> None:
    """Choose how this KB answers from passages: quoted sentences, or verified generated answers."""
    from apps.customer_service.answering import set_answer_mode
    from apps.customer_service.knowledge_base import default_kb_dir

    with exit_on_error(ValueError, OSError):
        path = set_answer_mode(kb_dir or default_kb_dir(), mode)
    console.print(f"answer mode {mode} written to {path}", markup=False)


@app.command("export-feedback")
def export_feedback_cmd(
    out: Annotated[Path, typer.Option("--out", help="FAQ file to write (.csv, .jsonl or .json).")] = Path(
        "feedback_faq.csv"
    ),
    as_json: JsonOption = False,
) -> None:
    """Write agents' corrected answers as FAQ rows, ready for `aigc support index`."""
    from apps.customer_service.feedback import export_feedback
    from apps.customer_service.storage import SupportStore
    from core.storage import StorageError

    with exit_on_error(StorageError, ValueError, OSError):
        rows = export_feedback(SupportStore(), out)
    record_cli_event(AuditAction.FEEDBACK_EXPORT, str(out), {"rows": rows})
    if as_json:
        typer.echo(json.dumps({"rows": rows, "path": str(out)}))
        return
    if rows:
        console.print(
            f"[green]Wrote {rows} corrected answer(s)[/] to {escape(str(out))}; index it with the KB sources."
        )
    else:
        console.print(f"[yellow]No corrected answers yet[/]; wrote an empty file {escape(str(out))}.")


@app.command("sample-questions")
def sample_questions_cmd(
    out: Annotated[Path, typer.Option("--out", help="CSV to write (query, gold_ids, retrieved, ...).")],
    kb_dir: KBDirOption = None,
    size: Annotated[int, typer.Option("--size", "-n", help="Distinct questions to draw.", min=1)] = 200,
    since: Annotated[
        str | None, typer.Option("--since", help="Only questions asked since this date (YYYY-MM-DD, UTC).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the draw.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Draw a random sample of the questions customers asked on this KB, for the team to label with
    the entries that answer them: a fair judge for `index --adapt --judge-questions`, and an eval set."""
    from apps.customer_service.cli.gaps import parse_since
    from apps.customer_service.knowledge_base import default_kb_dir
    from apps.customer_service.question_sample import sample_questions, write_question_sample
    from apps.customer_service.storage import SupportStore
    from core.storage import StorageError

    target = kb_dir or default_kb_dir()
    with exit_on_error(ValueError):
        moment = parse_since(since)
    with exit_on_error(StorageError):
        asked = SupportStore().asked_questions(target, moment)
    rows = sample_questions(asked, size, seed)
    with exit_on_error(ValueError, OSError):
        write_question_sample(rows, out)
    record_cli_event(AuditAction.QUESTIONS_EXPORT, str(out), {"kb": str(target), "rows": len(rows)})
    if as_json:
        typer.echo(json.dumps({"rows": len(rows), "asked": len(asked), "path": str(out)}))
        return
    if not rows:
        console.print(
            f"[yellow]No questions asked on {escape(str(target))} yet[/]; "
            f"wrote an empty file {escape(str(out))}."
        )
        return
    console.print(
        f"Wrote {len(rows)} of the questions asked on {target} to {out}. Fill in gold_ids (entry ids, "
        "';'-separated; leave a question nobody can place empty), then: aigc support index ... --adapt "
        f"--judge-questions {out}",
        markup=False,
    )


@app.command("calibrate")
def calibrate_cmd(
    kb_dir: KBDirOption = None,
    queries: Annotated[
        Path | None, typer.Option("--queries", help="In-scope CSV query,gold_ids (default: sample queries).")
    ] = None,
    out_of_scope: Annotated[
        Path | None, typer.Option("--out-of-scope", help="CSV with a query column (default: sample file).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Fit the answer gate (confidence, hand-off threshold, verbatim margin) and save it in the KB."""
    from apps.customer_service.confidence import calibrate_kb
    from apps.customer_service.demo import OUT_OF_SCOPE, QUERIES
    from apps.customer_service.errors import KBFormatError, SourceError
    from apps.customer_service.knowledge_base import default_kb_dir

    target = kb_dir or default_kb_dir()
    with exit_on_error(FileNotFoundError, KBFormatError, SourceError, ValueError):
        calibration = calibrate_kb(target, queries or QUERIES, out_of_scope or OUT_OF_SCOPE)
    record_cli_event(
        AuditAction.KB_CALIBRATE, str(target), {"handoff_threshold": calibration.handoff_threshold}
    )
    if as_json:
        typer.echo(json.dumps(asdict(calibration), indent=2))
        return
    console.print(
        f"[green]Calibrated[/] {target}: hand-off below {calibration.handoff_threshold:.3f}, verbatim FAQ at "
        f"margin >= {calibration.verbatim_margin:.3f}; {calibration.report}"
    )
