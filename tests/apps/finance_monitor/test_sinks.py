"""The finance log sink (webhook sinks are the core's: tests/core/test_webhooks.py)."""

from __future__ import annotations

import logging

from apps.finance_monitor.sinks import LogSink


def test_log_sink(caplog):
    with caplog.at_level(logging.WARNING, logger="apps.finance_monitor.sinks"):
        LogSink().send({"id": 7, "rule": "surge", "key": "Energy", "message": "surge: share 90%"}, "k")
    assert "ALERT surge: share 90%" in caplog.text
    assert caplog.records[0].rule == "surge"
