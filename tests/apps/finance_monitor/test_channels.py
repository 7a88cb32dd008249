"""Alert channels per rule (Slack, Teams, e-mail, webhooks) through the outbox, against real local servers.

Slack is reached through a local TLS-terminating proxy (``HTTPS_PROXY``), because Apprise's Slack
plugin always posts to ``https://hooks.slack.com``; Teams through a local HTTPS receiver; e-mail
through aiosmtpd with STARTTLS and a login; certificates come from a test CA (trustme).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import trustme

from apps.finance_monitor.alert_text import ALERTS_PAGE, alert_message
from apps.finance_monitor.alerts import AlertEngine
from apps.finance_monitor.apprise_sink import REDACT, AppriseSink, SecretRedactor, url_secrets
from apps.finance_monitor.channels import ChannelSpec, build_channel_sinks
from apps.finance_monitor.outbox import DeliveryPolicy, Sender, retry
from apps.finance_monitor.rules import load_rules, rule_channels
from apps.finance_monitor.sinks import LogSink
from apps.finance_monitor.sources import NewsItem
from apps.finance_monitor.storage import Alert, Delivery, ScoreRow, scored_frame, store_items, store_scores
from core.storage import session_scope
from core.webhook_safety import AllowList
from core.webhooks import WebhookSink
from tests.apps.finance_monitor.channel_servers import HttpsReceiver, SmtpServer, free_port
from tests.apps.finance_monitor.test_alerts import RULE, T0, baseline_hours, hourly
from tests.webhook_receiver import Receiver

NOW = T0 + timedelta(days=2)
LOCAL = AllowList.parse(["127.0.0.1"])
DASHBOARD = "https://monitor.example.com"
SLACK_URL = "https://hooks.slack.com/services/T0AB12CD3/B0CD34EF5/xYzSecretToken1234567890"
SLACK_SECRETS = ("T0AB12CD3", "B0CD34EF5", "xYzSecretToken1234567890")
SMTP_PASSWORD = "pw-Hunter2-Secret"
WORKFLOW, SIGNATURE = "a1b2c3d4e5f60718293a4b5c6d7e8f90", "SigSecret0123456789abcdefXYZ"
HEADLINE = "Refinery fire <!channel> shuts Gulf plant"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls(ca, tmp_path, monkeypatch) -> trustme.CA:
    """The test CA trusted by requests (Slack, Teams) and by ssl's default context (SMTP); no proxy."""
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "")
    return ca


def store_surge(engine) -> None:
    """24 quiet hours of Energy news, then an hour of six negative stories (links, one headline with a
    Slack mention in it)."""
    rows = hourly({**baseline_hours(range(24)), 24: (6, 6)})
    items = [
        NewsItem(
            r["item_id"], r["timestamp"], r["source"],
            HEADLINE if r["item_id"] == "Ene-24-5" else f"Headline {r['item_id']}",
            url=f"https://news.example.com/{r['item_id']}",
        )
        for r in rows
    ]  # fmt: skip
    scores = [ScoreRow(r["item_id"], "v1", r["sentiment"], 0.9, r["topic"], 0.8) for r in rows]
    with session_scope(engine) as session:
        store_items(session, items)
        store_scores(session, scores)


def raise_alert(engine, sinks: dict, specs: list[ChannelSpec], clock, rule=RULE, shared=()) -> int:
    rule = dataclasses.replace(rule, channels=tuple(specs))
    alert_engine = AlertEngine(engine, [rule], list(shared), clock=clock, channel_sinks=sinks)
    with session_scope(engine) as session:
        frame = scored_frame(session)
    (alert,) = alert_engine.evaluate(frame)
    return alert.id


def deliveries(engine) -> list[Delivery]:
    with session_scope(engine) as session:
        return list(session.scalars(sa.select(Delivery).order_by(Delivery.id)))


def database_text(engine) -> str:
    """Every row of the alert and outbox tables as text."""
    with session_scope(engine) as session:
        rows = [*session.scalars(sa.select(Delivery)), *session.scalars(sa.select(Alert))]
        return "\n".join(repr({c.name: getattr(r, c.key) for c in r.__table__.columns}) for r in rows)


def logged_text(caplog) -> str:
    """Every captured record with its fields (the test SMTP server's own log left out)."""
    return "\n".join(
        f"{r.getMessage()} {r.__dict__}" for r in caplog.records if not r.name.startswith("mail.log")
    )


# --- the rules file ---------------------------------------------------------------------------------


def write_rules(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_rules_name_shared_and_inline_channels(tmp_path):
    path = write_rules(
        tmp_path,
        "channels:\n"
        "  desk-slack: {type: slack, url_env: SLACK_WEBHOOK_URL}\n"
        "defaults:\n  channels: [desk-slack]\n"
        "rules:\n"
        "  - name: topic-surge\n"
        "    channels:\n"
        "      - desk-slack\n"
        "      - {type: email, smtp_env: SMTP_URL, to: [risk@example.com, desk@example.com],"
        " from: alerts@example.com}\n"
        "      - {type: teams, url_env: TEAMS_URL, name: risk-teams}\n"
        "  - name: ticker-surge\n",
    )
    topic, ticker = load_rules(path)
    assert [c.name for c in topic.channels] == ["desk-slack", "topic-surge.email", "risk-teams"]
    email = topic.channels[1]
    assert (email.smtp_env, email.to, email.sender) == (
        "SMTP_URL", ("risk@example.com", "desk@example.com"), "alerts@example.com"
    )  # fmt: skip
    assert [c.name for c in ticker.channels] == ["desk-slack"]  # from defaults
    assert [c.name for c in rule_channels([topic, ticker])] == [
        "desk-slack",
        "topic-surge.email",
        "risk-teams",
    ]


@pytest.mark.parametrize(
    ("channel", "field"),
    [
        ("{type: slack, url: 'https://hooks.slack.com/services/T0/B0/tok'}", "url"),
        ("{type: slack, url_env: 'https://hooks.slack.com/services/T0/B0/tok'}", "url_env"),
        ("{type: slack, url_env: xoxb-1234-secret}", "url_env"),
        ("{type: webhook, url_env: HOOK, token: abc123}", "token"),
        ("{type: email, smtp_env: SMTP_URL, to: [a@example.com], password: hunter2}", "password"),
        ("{type: email, to: ['mailto://u:p@smtp.example.com'], smtp_env: SMTP_URL}", "to"),
    ],
)
def test_a_secret_written_in_the_rules_file_is_refused(tmp_path, channel, field):
    path = write_rules(tmp_path, f"rules:\n  - name: surge\n    channels: [{channel}]\n")
    with pytest.raises(ValueError) as err:
        load_rules(path)
    message = str(err.value)
    assert message.startswith(f"{path}: rule 1 ('surge'), channel 1, field '{field}':"), message
    assert "\n" not in message and "rules file" in message
    assert "hunter2" not in message and "abc123" not in message and "/tok" not in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("rules:\n  - name: a\n    channels: [nowhere]\n", "unknown channel 'nowhere'"),
        ("rules:\n  - name: a\n    channels: [{type: pager, url_env: X}]\n", "field 'type'"),
        ("rules:\n  - name: a\n    channels: [{type: email, smtp_env: S}]\n", "needs 'to'"),
        ("rules:\n  - name: a\n    channels: [{type: slack, url_env: X, name: log}]\n", "field 'name'"),
        (
            "rules:\n  - name: a\n    channels: [{type: slack, url_env: X, name: n}]\n"
            "  - name: b\n    channels: [{type: slack, url_env: Y, name: n}]\n",
            "two different channels are named 'n'",
        ),
        (
            "channels:\n  s: {type: slack}\nrules:\n  - name: a\n",
            "channel 's': a slack channel needs 'url_env'",
        ),
    ],
)
def test_bad_channels_are_refused_with_one_line(tmp_path, text, fragment):
    path = write_rules(tmp_path, text)
    with pytest.raises(ValueError, match=fragment) as err:
        load_rules(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_startup_needs_every_variable_and_a_url_of_the_channel_type(tls):
    spec = ChannelSpec("desk", "slack", url_env="SLACK_WEBHOOK_URL")
    with pytest.raises(
        ValueError, match="channel 'desk' .slack.: environment variable SLACK_WEBHOOK_URL is not set"
    ):
        build_channel_sinks([spec], environ={}, where="rules.yaml")
    teams_url = f"workflows://teams.example.com/{WORKFLOW}/{SIGNATURE}/"
    with pytest.raises(ValueError, match="SLACK_WEBHOOK_URL does not hold a usable slack URL") as err:
        build_channel_sinks([spec], environ={"SLACK_WEBHOOK_URL": teams_url}, where="rules.yaml")
    assert SIGNATURE not in str(err.value) and WORKFLOW not in str(err.value)
    mail = ChannelSpec("risk-mail", "email", smtp_env="SMTP_URL", to=("risk@example.com",))
    smtp = {
        "SMTP_URL": f"mailtos://alerts:{SMTP_PASSWORD}@127.0.0.1:2525"
    }  # user 'alerts' is no From address
    with pytest.raises(ValueError, match="Invalid ~From~ email") as err:
        build_channel_sinks([mail], environ=smtp)
    assert "'from:' address" in str(err.value) and SMTP_PASSWORD not in str(err.value)
    teams = ChannelSpec("risk", "teams", url_env="TEAMS_URL")
    local = {"TEAMS_URL": f"workflows://127.0.0.1:8443/{WORKFLOW}/{SIGNATURE}/"}
    with pytest.raises(ValueError, match="loopback") as err:
        build_channel_sinks([teams], environ=local)
    assert SIGNATURE not in str(err.value)
    assert isinstance(build_channel_sinks([teams], environ=local, allow=LOCAL)["risk"], AppriseSink)
    hook = ChannelSpec("ops", "webhook", url_env="HOOK", token_env="HOOK_TOKEN")
    with pytest.raises(ValueError, match="HOOK_TOKEN is not set"):
        build_channel_sinks([hook], environ={"HOOK": "http://127.0.0.1:9/x"}, allow=LOCAL)
    sink = build_channel_sinks(
        [hook], environ={"HOOK": "http://127.0.0.1:9/x", "HOOK_TOKEN": "t0k3n-XYZ"}, allow=LOCAL
    )
    assert isinstance(sink["ops"], WebhookSink) and sink["ops"].name == "ops"


def test_the_monitor_command_refuses_a_secret_in_the_rules_or_a_missing_variable(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from apps.finance_monitor.cli import app

    model = tmp_path / "model"
    model.mkdir()  # the rules are read before the model is loaded
    base = ["monitor", "--once", "--watch-dir", str(tmp_path), "--set", f"sentiment_model={model}"]
    secret = write_rules(
        tmp_path,
        "rules:\n  - name: surge\n"
        "    channels: [{type: slack, webhook_url: 'https://hooks.slack.com/services/T0/B0/tok'}]\n",
    )
    result = CliRunner().invoke(app, [*base, "--set", f"rules={secret}"])
    (line,) = result.output.strip().splitlines()
    assert result.exit_code == 2 and line.startswith("error: ")
    for fragment in (str(secret), "rule 1 ('surge')", "field 'webhook_url'", "'url_env'"):
        assert fragment in line
    assert "hooks.slack.com" not in line
    missing = tmp_path / "missing.yaml"
    missing.write_text("rules:\n  - name: surge\n    channels: [{type: slack, url_env: DESK_SLACK_URL}]\n")
    monkeypatch.delenv("DESK_SLACK_URL", raising=False)
    result = CliRunner().invoke(app, [*base, "--set", f"rules={missing}"])
    (line,) = result.output.strip().splitlines()
    assert result.exit_code == 2 and "'surge.slack'" in line and "DESK_SLACK_URL is not set" in line
    assert not (Path(os.environ["AIGC_DATA_DIR"]) / "aigc.db").exists()  # checked before the database


# --- e-mail -----------------------------------------------------------------------------------------


def email_env(port: int) -> dict[str, str]:
    return {"SMTP_URL": f"mailtos://alerts:{SMTP_PASSWORD}@127.0.0.1:{port}?mode=starttls"}


EMAIL = ChannelSpec(
    "risk-mail",
    "email",
    smtp_env="SMTP_URL",
    to=("risk@example.com", "desk@example.com"),
    sender="alerts@example.com",
)


def test_email_goes_out_as_plain_text_over_starttls_with_the_alert_and_its_links(sqlite_db, tls, caplog):
    caplog.set_level(1)  # everything, Apprise's TRACE and DEBUG lines included
    clock = Clock(NOW)
    store_surge(sqlite_db)
    with SmtpServer(tls, "alerts", SMTP_PASSWORD) as smtp:
        sinks = build_channel_sinks([EMAIL], environ=email_env(smtp.port), dashboard_url=DASHBOARD, timeout=5)
        alert_id = raise_alert(sqlite_db, sinks, [EMAIL], clock, shared=[LogSink()])
        assert [d.sink for d in deliveries(sqlite_db)] == ["log", "risk-mail"]
        report = Sender(sqlite_db, [LogSink(), *sinks.values()], clock=clock).deliver_due()
        assert len(report.sent) == 2
    assert smtp.logins == ["alerts"]
    assert sorted(r for m in smtp.mails for r in m.recipients) == ["desk@example.com", "risk@example.com"]
    mail = smtp.mails[0]
    assert mail.sender == "alerts@example.com"
    assert mail.message.get_content_type() == "text/plain"
    assert mail.message["Subject"] == f"Finance alert #{alert_id}: share negative 100% for topic 'Energy'"
    body = mail.body
    assert "Window: 2026-03-03 00:00 UTC to 2026-03-03 01:00 UTC (hour buckets)" in body
    assert "Value: 100% (threshold 61%, baseline 30% ± 10%)" in body and "Items: 6" in body
    assert HEADLINE in body and "https://news.example.com/Ene-24-5" in body
    assert f"Dashboard: {DASHBOARD}/finance-alerts?alert={alert_id}" in body
    (row,) = [d for d in deliveries(sqlite_db) if d.sink == "risk-mail"]
    assert f"Reference: {row.idempotency_key}" in body
    assert (row.status, row.attempts) == ("delivered", 1)
    assert row.target == f"email to risk@example.com, desk@example.com via 127.0.0.1:{smtp.port} ($SMTP_URL)"
    assert SMTP_PASSWORD not in database_text(sqlite_db)
    assert SMTP_PASSWORD not in logged_text(caplog)


def test_email_down_is_retried_with_backoff_then_dead_then_requeued(sqlite_db, tls, caplog):
    caplog.set_level(logging.DEBUG)
    clock = Clock(NOW)
    store_surge(sqlite_db)
    port = free_port()  # nothing listens yet
    sinks = build_channel_sinks([EMAIL], environ=email_env(port), timeout=2)
    raise_alert(sqlite_db, sinks, [EMAIL], clock)
    sender = Sender(
        sqlite_db, list(sinks.values()), DeliveryPolicy(max_attempts=3, backoff_s=10), clock=clock
    )
    waits = []
    for _ in range(3):
        sender.deliver_due()
        (row,) = deliveries(sqlite_db)
        waits.append((row.next_attempt_at - clock.now).total_seconds())
        clock.now = row.next_attempt_at
    assert (row.status, row.attempts) == ("dead", 3)
    assert waits[:2] == [10, 20]
    assert row.last_error == f'{row.target}: Connection error while submitting email to "127.0.0.1"'
    assert retry(sqlite_db, all_dead=True, now=clock.now) == 1
    with SmtpServer(tls, "alerts", SMTP_PASSWORD, port=port) as smtp:
        assert len(sender.deliver_due().sent) == 1
    assert len(smtp.mails) == 2  # one message per recipient
    assert deliveries(sqlite_db)[0].status == "delivered"
    assert SMTP_PASSWORD not in database_text(sqlite_db) + logged_text(caplog)


# --- Slack and Teams ----------------------------------------------------------------------------------


SLACK = ChannelSpec("desk-slack", "slack", url_env="SLACK_WEBHOOK_URL")


def test_slack_fails_then_is_retried_and_delivered_with_no_token_in_db_or_logs(
    sqlite_db, tls, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)  # Apprise logs the webhook URL at DEBUG level
    clock = Clock(NOW)
    store_surge(sqlite_db)
    with HttpsReceiver(tls, script=[500], proxy=True) as slack:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{slack.port}")
        sinks = build_channel_sinks(
            [SLACK], environ={"SLACK_WEBHOOK_URL": SLACK_URL}, dashboard_url=DASHBOARD
        )
        alert_id = raise_alert(sqlite_db, sinks, [SLACK], clock)
        sender = Sender(sqlite_db, list(sinks.values()), DeliveryPolicy(backoff_s=5), clock=clock)
        assert len(sender.deliver_due().retrying) == 1
        (row,) = deliveries(sqlite_db)
        assert (
            row.last_error
            == "slack ($SLACK_WEBHOOK_URL): Failed to send to Slack: Internal server error., error=500."
        )
        clock.now += timedelta(seconds=5)
        assert len(sender.deliver_due().sent) == 1
    assert [(r.host, r.path) for r in slack.requests] == [
        ("hooks.slack.com", "/services/" + "/".join(SLACK_SECRETS))
    ] * 2
    attachment = slack.requests[-1].body["attachments"][0]
    assert attachment["title"] == f"Finance alert #{alert_id}: share negative 100% for topic 'Energy'"
    assert "&lt;!channel&gt;" in attachment["text"] and "<!channel>" not in attachment["text"]  # no mention
    assert f"{DASHBOARD}/finance-alerts?alert={alert_id}" in attachment["text"]
    (row,) = deliveries(sqlite_db)
    assert (row.status, row.attempts, row.target) == ("delivered", 2, "slack ($SLACK_WEBHOOK_URL)")
    logs = logged_text(caplog)
    assert "Slack POST URL: *** (cert_verify=True)" in logs  # Apprise's line, masked
    for secret in SLACK_SECRETS:
        assert secret not in database_text(sqlite_db) and secret not in logs


def test_a_slack_webhook_that_is_gone_is_a_dead_letter_at_once(sqlite_db, tls, monkeypatch):
    clock = Clock(NOW)
    store_surge(sqlite_db)
    with HttpsReceiver(tls, script=[404], proxy=True) as slack:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{slack.port}")
        sinks = build_channel_sinks([SLACK], environ={"SLACK_WEBHOOK_URL": SLACK_URL})
        raise_alert(sqlite_db, sinks, [SLACK], clock)
        report = Sender(sqlite_db, list(sinks.values()), clock=clock).deliver_due()
    (row,) = deliveries(sqlite_db)
    assert report.dead == [row.id] and (row.status, row.attempts) == ("dead", 1)
    assert (
        row.last_error == "slack ($SLACK_WEBHOOK_URL): Failed to send to Slack: Page not found., error=404."
    )


def test_teams_gets_an_adaptive_card_from_an_allowed_host(sqlite_db, tls):
    clock = Clock(NOW)
    store_surge(sqlite_db)
    teams = ChannelSpec("risk-teams", "teams", url_env="TEAMS_URL")
    with HttpsReceiver(tls) as receiver:
        env = {"TEAMS_URL": f"workflows://127.0.0.1:{receiver.port}/{WORKFLOW}/{SIGNATURE}/"}
        sinks = build_channel_sinks([teams], environ=env, allow=LOCAL)
        alert_id = raise_alert(sqlite_db, sinks, [teams], clock)
        assert len(Sender(sqlite_db, list(sinks.values()), clock=clock).deliver_due().sent) == 1
    (request,) = receiver.requests
    assert (
        request.path.startswith(f"/workflows/{WORKFLOW}/triggers/manual/paths/invoke?")
        and SIGNATURE in request.path
    )
    card = request.body["attachments"][0]["content"]
    texts = [block.get("text", "") for block in card["body"]]
    assert f"Finance alert #{alert_id}: share negative 100% for topic 'Energy'" in texts
    body = texts[2].replace("\\", "")  # Apprise escapes Markdown for Teams: the text shows as written
    assert "Window: 2026-03-03 00:00 UTC to 2026-03-03 01:00 UTC (hour buckets)" in body
    assert "Refinery fire <!channel> shuts Gulf plant" in body
    (row,) = deliveries(sqlite_db)
    assert row.target == f"teams: 127.0.0.1:{receiver.port} ($TEAMS_URL)" and SIGNATURE not in database_text(
        sqlite_db
    )


def test_a_teams_redirect_is_not_followed_and_ends_dead(sqlite_db, tls):
    clock = Clock(NOW)
    store_surge(sqlite_db)
    teams = ChannelSpec("risk-teams", "teams", url_env="TEAMS_URL")
    with HttpsReceiver(tls, script=[302]) as receiver:
        # redirect=yes in the URL asks Apprise to follow; the channel overrules it
        env = {"TEAMS_URL": f"workflows://127.0.0.1:{receiver.port}/{WORKFLOW}/{SIGNATURE}/?redirect=yes"}
        sinks = build_channel_sinks([teams], environ=env, allow=LOCAL)
        raise_alert(sqlite_db, sinks, [teams], clock)
        report = Sender(sqlite_db, list(sinks.values()), clock=clock).deliver_due()
    assert [r.path.split("?")[0] for r in receiver.requests] == [
        f"/workflows/{WORKFLOW}/triggers/manual/paths/invoke"
    ]
    (row,) = deliveries(sqlite_db)
    assert report.dead == [row.id] and "error=302" in row.last_error


# --- generic webhooks ----------------------------------------------------------------------------------


def test_a_webhook_channel_gets_only_its_rules_alerts_with_an_idempotency_key(sqlite_db):
    clock = Clock(NOW)
    store_surge(sqlite_db)
    hook = ChannelSpec("ops-hook", "webhook", url_env="OPS_HOOK")
    with Receiver() as receiver:
        sinks = build_channel_sinks(
            [hook], environ={"OPS_HOOK": receiver.url + "?token=T0kenSecret99"}, allow=LOCAL
        )
        with_channel = dataclasses.replace(RULE, channels=(hook,))
        without = dataclasses.replace(RULE, name="energy-overall", scope="all")
        engine = AlertEngine(
            sqlite_db, [with_channel, without], [LogSink()], clock=clock, channel_sinks=sinks
        )
        with session_scope(sqlite_db) as session:
            first, second = engine.evaluate(scored_frame(session))
        assert sorted((d.alert_id, d.sink) for d in deliveries(sqlite_db)) == [
            (first.id, "log"), (first.id, "ops-hook"), (second.id, "log")
        ]  # fmt: skip
        assert len(Sender(sqlite_db, [LogSink(), *sinks.values()], clock=clock).deliver_due().sent) == 3
    assert receiver.accepted_ids() == {first.id: 1}
    (body,) = receiver.bodies
    assert body["stories"][0]["title"] == HEADLINE or all(
        s["sentiment"] == "negative" for s in body["stories"]
    )
    assert len(body["stories"]) == 5 and body["stories"][0]["url"].startswith("https://news.example.com/")
    assert "T0kenSecret99" not in database_text(sqlite_db)


def test_the_monitor_sends_each_rules_alerts_to_that_rules_channels(sqlite_db, tiny_sentiment_dir, tmp_path):
    from apps.finance_monitor.classifiers import load_model
    from apps.finance_monitor.monitor import SAMPLE_RULES, Monitor
    from apps.finance_monitor.sample_data import SAMPLE_DATA_DIR, STREAM_FILES
    from tests.apps.finance_monitor.model_fixtures import TruthScorer

    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(
        SAMPLE_RULES.read_text().replace(
            "  - name: ticker-negative-surge\n",
            "  - name: ticker-negative-surge\n    channels: [desk-hook]\n",
        )
        + "channels:\n  desk-hook: {type: webhook, url_env: DESK_HOOK}\n"
    )
    rules = load_rules(rules_file)
    with Receiver() as receiver:
        sinks = build_channel_sinks(rule_channels(rules), environ={"DESK_HOOK": receiver.url}, allow=LOCAL)
        scorer = TruthScorer(load_model(tiny_sentiment_dir))
        monitor = Monitor(sqlite_db, scorer, rules, [LogSink()], clock=lambda: NOW, channel_sinks=sinks)
        result = monitor.cycle(files=[SAMPLE_DATA_DIR / name for name in STREAM_FILES])
        report = monitor.deliver()
    assert len(result.alerts) == 2 and len(report.sent) == 3  # two to the log, one to the channel
    (body,) = receiver.bodies
    assert (body["rule"], body["key"]) == ("ticker-negative-surge", "NWDE")
    assert body["stories"] and all(s["sentiment"] == "negative" for s in body["stories"])


# --- secrets and the message ----------------------------------------------------------------------------


def test_url_secrets_cover_tokens_passwords_and_signatures():
    assert set(SLACK_SECRETS) <= url_secrets(SLACK_URL)
    assert {"T0AB12CD3", "B0CD34EF5"} <= url_secrets("slack://T0AB12CD3/B0CD34EF5/xYzSecretToken1234567890/")
    assert SMTP_PASSWORD in url_secrets(f"mailtos://alerts:{SMTP_PASSWORD}@smtp.example.com:587")
    assert "alerts" not in url_secrets(f"mailtos://alerts:{SMTP_PASSWORD}@smtp.example.com:587")
    teams = (
        f"https://x.logic.azure.com/workflows/{WORKFLOW}/triggers/manual/paths/invoke?sv=1.0&sig={SIGNATURE}"
    )
    assert {WORKFLOW, SIGNATURE} <= url_secrets(teams)
    assert "triggers" not in url_secrets(teams) and "1.0" not in url_secrets(teams)


def test_the_redactor_cleans_messages_arguments_and_tracebacks():
    redactor = SecretRedactor()
    redactor.add(["s3cr3t-value"])
    record = logging.LogRecord(
        "apprise", logging.DEBUG, __file__, 1, "POST %s", ("https://h/s3cr3t-value",), None
    )
    try:
        raise RuntimeError("failed at https://h/s3cr3t-value")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    assert redactor.filter(record) is True
    assert record.getMessage().startswith("POST https://h/***") and "s3cr3t" not in record.getMessage()
    assert record.exc_info is None and "RuntimeError: failed at https://h/***" in record.getMessage()
    assert REDACT in logging.getLogger("apprise").filters


def test_the_message_states_rule_window_numbers_stories_and_links():
    payload = {
        "id": 7, "rule": "ticker-surge", "scope": "entity", "key": "NWE", "metric": "share_negative",
        "value": 0.8333, "threshold": 0.8, "reason": "absolute", "baseline_mean": None, "baseline_std": None,
        "volume": 6, "window": "hour", "window_start": "2026-03-03T00:00:00+00:00",
        "window_end": "2026-03-03T01:00:00+00:00", "item_ids": [f"i{n}" for n in range(8)],
        "stories": [
            {"id": "i1", "timestamp": "2026-03-03T00:05:00+00:00", "source": "Wire\nwatch",
             "sentiment": "negative", "title": "x" * 300, "url": "javascript:alert(1)"},
            {"id": "i2", "timestamp": "2026-03-03T00:10:00+00:00", "source": "Desk", "sentiment": "negative",
             "title": "Plant shut", "url": "https://news.example.com/i2"},
        ],
    }  # fmt: skip
    title, body = alert_message(payload)
    assert title == "Finance alert #7: share negative 83% for entity 'NWE'"
    assert body.splitlines()[:4] == [
        "Rule: ticker-surge (at or above its threshold)",
        "Window: 2026-03-03 00:00 UTC to 2026-03-03 01:00 UTC (hour buckets)",
        "Value: 83% (threshold 80%)",
        "Items: 6",
    ]
    assert f"- 2026-03-03 00:05 UTC · Wire watch · negative · {'x' * 159}…" in body
    assert "javascript:" not in body and "  https://news.example.com/i2" in body
    assert "… and 6 more on the dashboard" in body and "Dashboard:" not in body


def test_the_message_carries_the_digest_summary_and_what_it_cites():
    payload = {
        "id": 8, "rule": "r", "scope": "topic", "key": "Energy", "metric": "share_negative", "value": 0.9,
        "threshold": 0.7, "reason": "absolute", "volume": 9, "window": "hour",
        "window_start": "2026-03-03T00:00:00+00:00", "window_end": "2026-03-03T01:00:00+00:00",
        "digest": {
            "mode": "extractive",
            "summary_text": "Refinery shut after blast [1]. Shares\nfall 9% [2].",
            "refs": [{"id": "a", "source": "Wire", "title": "Refinery shut after blast"},
                     {"id": "b", "source": "Desk", "title": "Shares fall 9%"}],
        },
    }  # fmt: skip
    _title, body = alert_message(payload)
    assert "Summary (quoted headlines): Refinery shut after blast [1]. Shares fall 9% [2]." in body
    assert "[1] Wire · Refinery shut after blast" in body and "[2] Desk · Shares fall 9%" in body
    assert "Summary" not in alert_message({**payload, "digest": None})[1]


def test_the_dashboard_link_is_the_alerts_page_of_the_suite(monkeypatch):
    from core.auth import Role
    from core.ui.auth import Viewer
    from core.ui.shell import page_plan

    monkeypatch.setenv("AIGC_UI_APPS", "finance")
    admin = Viewer(name="a", role=Role.ADMIN, auth_enabled=False)
    urls = {Path(script).name: url for _section, script, _t, url, _p, _ok in page_plan(admin)}
    assert urls["alerts.py"] == ALERTS_PAGE
