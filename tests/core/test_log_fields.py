"""Log lines show their ``extra`` fields (masked where the name says secret), and a command run
without a terminal logs plain lines that no column width wraps."""

from __future__ import annotations

import logging
import subprocess
import sys

from core.log_fields import (
    MASK,
    MAX_TEXT_CHARS,
    MAX_VALUE_CHARS,
    FieldsFormatter,
    StderrHandler,
    record_fields,
)
from tests.cli_run import run_aigc, run_aigc_process


def _record(**fields: object) -> logging.LogRecord:
    return logging.makeLogRecord({"name": "core.finetune.loop", "msg": "Epoch done", **fields})


def test_fields_follow_the_message_in_the_order_given():
    formatter = FieldsFormatter("%(name)s %(message)s")
    text = formatter.format(
        _record(epoch=2, val_macro_f1=0.8512345, labels={"negative": 3}, note="two words")
    )
    assert text == (
        'core.finetune.loop Epoch done  epoch=2 val_macro_f1=0.8512 labels={"negative":3} note="two words"'
    )
    assert formatter.format(_record()) == "core.finetune.loop Epoch done"
    assert record_fields(_record(epoch=1)) == {"epoch": 1}


def test_secret_looking_fields_are_masked_even_inside_mappings_and_long_values_are_cut():
    formatter = FieldsFormatter("%(message)s")
    text = formatter.format(
        _record(password="hunter2", api_key="k-123", smtp={"user": "a", "Token": "t-9"}, ids=list(range(500)))
    )
    for secret in ("hunter2", "k-123", "t-9"):
        assert secret not in text
    assert f"password={MASK}" in text and f"api_key={MASK}" in text and f'"Token":"{MASK}"' in text
    # a secret word inside a longer word is no secret: counts of passages and tokens stay readable
    counts = formatter.format(_record(passages=12, tokens=340, max_new_tokens=64, smtp_password="x"))
    assert counts == f"Epoch done  passages=12 tokens=340 max_new_tokens=64 smtp_password={MASK}"
    ids = text.split("ids=", 1)[1]
    assert len(ids) == MAX_VALUE_CHARS and ids.endswith("…")
    long_text = formatter.format(_record(text="x" * (MAX_TEXT_CHARS + 5), path="/p" * 300))
    assert f"text={'x' * (MAX_TEXT_CHARS - 1)}…" in long_text and "path=" + "/p" * 300 in long_text


def test_urls_in_messages_and_fields_lose_their_secrets_but_local_paths_stay():
    formatter = FieldsFormatter("%(message)s")
    record = logging.makeLogRecord(
        {
            "msg": "Posting to %s failed",
            "args": ("https://hooks.example.com/services/T0001/B0002/abcdefghijklmnopqrstuvwx",),
            "error": "connect redis://alice:pa55word@10.0.0.5:6379/0 refused (https://x.io/a?token=zz9&v=1)",
            "db": "sqlite:////tmp/aigc/aigc.db",
        }
    )
    text = formatter.format(record)
    for secret in ("abcdefghijklmnopqrstuvwx", "pa55word", "zz9"):
        assert secret not in text, text
    assert "redis://alice:***@10.0.0.5:6379/0" in text and "https://x.io/a?token=***&v=***" in text
    assert "https://hooks.example.com/services/T0001/B0002/***" in text
    assert "db=sqlite:////tmp/aigc/aigc.db" in text


def test_the_fields_stay_on_the_message_line_above_a_traceback():
    formatter = FieldsFormatter("%(message)s")
    try:
        raise ConnectionError("cannot reach https://bob:hunter2@mail.example.com:587")
    except ConnectionError:
        record = logging.makeLogRecord({"msg": "Delivery failed", "exc_info": sys.exc_info(), "attempt": 3})
    first, *rest = formatter.format(record).splitlines()
    assert first == "Delivery failed  attempt=3"
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "ConnectionError: cannot reach https://bob:***@mail.example.com:587"


def test_the_handler_follows_sys_stderr_when_a_runner_swaps_it(capsys):
    handler = StderrHandler()
    handler.setFormatter(FieldsFormatter("%(message)s"))
    handler.handle(_record(epoch=3))
    assert capsys.readouterr().err == "Epoch done  epoch=3\n"


def test_a_command_without_a_terminal_logs_whole_lines_with_their_fields(tmp_path):
    db = tmp_path / ("a-long-directory-name-" * 4) / "aigc.db"
    db.parent.mkdir()
    env = {"COLUMNS": "40", "AIGC_HOME": str(tmp_path), "AIGC_DB_URL": f"sqlite:///{db}"}
    proc = run_aigc_process("db", "upgrade", env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if "Database schema upgraded" in line]
    assert " INFO core.schema: Database schema upgraded  url=sqlite:///" in line
    assert str(db) in line and 'revisions=["core_' in line  # one line at 40 columns, path and all


def test_in_process_runs_log_through_the_same_formatter(tmp_path, monkeypatch):
    monkeypatch.setenv("AIGC_HOME", str(tmp_path))
    monkeypatch.setenv("AIGC_DB_URL", f"sqlite:///{tmp_path / 'x.db'}")
    result = run_aigc("db", "upgrade")
    assert result.code == 0, result.stderr
    assert any("Database schema upgraded  url=" in line for line in result.stderr.splitlines())


def _fresh_python(script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a new interpreter (no logging set up, unlike this pytest process)."""
    command = [sys.executable, "-c", script]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)


def test_a_server_without_logging_gets_the_suites_info_lines_and_only_once():
    script = (
        "import logging\n"
        "from core.log_fields import configure_service_logging\n"
        "assert configure_service_logging() is True\n"
        "assert configure_service_logging() is False  # a rerun adds no second handler\n"
        "logging.getLogger('apps.finance_monitor.alerts').info('Alert raised', extra={'rule': 'surge'})\n"
        "logging.getLogger('httpx').info('a library chatting')\n"
        "logging.getLogger('httpx').warning('a library warning')\n"
    )
    proc = _fresh_python(script)
    lines = proc.stderr.splitlines()
    assert len(lines) == 2, proc.stderr
    assert lines[0].endswith(" INFO apps.finance_monitor.alerts: Alert raised  rule=surge")
    assert lines[1].endswith(" WARNING httpx: a library warning")


def test_sessions_starting_at_once_configure_the_server_log_once():
    script = (
        "import logging, threading, time\n"
        "import core.log_fields as lf\n"
        "class Slow(lf.StderrHandler):\n"
        "    def __init__(self):\n"
        "        time.sleep(0.2)  # widen the window between the check and the add\n"
        "        super().__init__()\n"
        "lf.StderrHandler = Slow\n"
        "barrier, results = threading.Barrier(4), []\n"
        "def session():\n"
        "    barrier.wait()\n"
        "    results.append(lf.configure_service_logging())\n"
        "threads = [threading.Thread(target=session) for _ in range(4)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "print(sorted(results), len(logging.getLogger().handlers))\n"
    )
    proc = _fresh_python(script)
    assert proc.stdout.strip() == "[False, False, False, True] 1", proc.stdout + proc.stderr


def test_unprintable_characters_in_a_field_are_escaped_never_written_raw():
    """A request path with a NUL, a terminal escape sequence and a bell (logged by the API's 500 handler)."""
    text = FieldsFormatter("%(message)s").format(_record(path="/v1/x\x00\x1b[2J\x1b[31mFAKE\x07"))
    assert text == 'Epoch done  path="/v1/x\\u0000\\u001b[2J\\u001b[31mFAKE\\u0007"'
    assert all(c.isprintable() for c in text)
