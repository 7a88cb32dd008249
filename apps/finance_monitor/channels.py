"""Alert channels analysts already use: Slack, Microsoft Teams, e-mail and generic webhooks, per rule.

A rule of the rules file names its channels (or describes them inline); every new alert of the
rule gets one outbox delivery per channel (:mod:`apps.finance_monitor.outbox` sends, retries and
dead-letters them like the monitor's own webhook)::

    channels:                                  # shared channels, referred to by name
      desk-slack: {type: slack, url_env: SLACK_WEBHOOK_URL}
      risk-mail: {type: email, smtp_env: SMTP_URL, to: [risk@example.com], from: alerts@example.com}
    rules:
      - name: topic-negative-surge
        channels: [desk-slack, risk-mail, {type: teams, url_env: TEAMS_WORKFLOW_URL}]

**Secrets stay out of the file.** A channel names the environment variables holding its URLs
(``url_env``, ``smtp_env``, ``token_env``); a URL or a secret-looking field written in the file is
refused when the rules load, and so is a variable that is not set when the monitor starts.

**Who sends.** Slack, Teams (Power Automate workflows) and e-mail go through Apprise
(:mod:`apps.finance_monitor.apprise_sink`: the message of :mod:`apps.finance_monitor.alert_text`,
redirects off, secrets kept out of logs and errors). Generic webhooks keep the project's own
:class:`~core.webhooks.WebhookSink`: Apprise posts on connections of its own, so it
cannot check the address it actually connects to (DNS rebinding), and it would not send the alert
JSON with an ``Idempotency-Key``; the project's sender does both. Teams and webhook hosts must
resolve to public addresses (unless allowed under ``webhooks: allow:``), at start and before every
attempt; Slack's host is fixed by Apprise (``hooks.slack.com``); the SMTP host comes from the
environment alone and is not checked (internal mail relays are common).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from apps.finance_monitor.apprise_sink import REDACT, AppriseSink, clean_error, url_secrets
from apps.finance_monitor.sinks import AlertSink
from core.webhook_safety import AllowList, check_webhook_url, mask_url
from core.webhooks import WebhookSink

logger = logging.getLogger(__name__)

CHANNEL_TYPES: tuple[str, ...] = ("slack", "teams", "email", "webhook")
#: Names of the monitor's own sinks, which a channel may not take.
RESERVED_NAMES = frozenset({"log", "webhook"})
_FIELDS: dict[str, tuple[str, ...]] = {
    "slack": ("url_env",),
    "teams": ("url_env",),
    "webhook": ("url_env", "token_env"),
    "email": ("smtp_env", "to", "from"),
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "slack": ("url_env",),
    "teams": ("url_env",),
    "webhook": ("url_env",),
    "email": ("smtp_env", "to"),
}
#: Apprise schemes each type accepts (a native https URL is mapped to one of them by Apprise).
_SCHEMES: dict[str, tuple[str, ...]] = {
    "slack": ("slack",),
    "teams": ("workflow", "workflows"),
    "email": ("mailto", "mailtos"),
}
_URL_HINTS = {
    "slack": "https://hooks.slack.com/services/… or slack://…",
    "teams": "a Power Automate workflow URL (https://….logic.azure.com/workflows/…) or workflows://…",
    "email": "mailto:// or mailtos:// with server, port, user and password; a 'from:' address in the "
    "rules when the user is not one",
    "webhook": "http://… or https://…",
}
#: Least seconds between two messages of one channel: Slack keeps Apprise's 1.2 s (its webhooks take
#: about one message a second); Apprise's default of 5.5 s would hold every other channel's
#: deliveries behind a burst of e-mails (one SMTP session each) or Teams posts.
_MIN_INTERVAL_S: dict[str, float | None] = {"slack": None, "teams": 1.0, "email": 0.0}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CHANNEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.:-]")
_EMAIL = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+")
_SECRET_KEY_HINTS = ("url", "hook", "pass", "token", "secret", "key", "auth", "sig", "smtp", "user", "cred")


@dataclass(frozen=True)
class ChannelSpec:
    """One alert channel as the rules file describes it: names of environment variables, never secrets.

    Args:
        name: Unique name; the delivery's ``sink`` in the outbox.
        type: ``slack``, ``teams``, ``email`` or ``webhook``.
        url_env: Variable holding the Slack, Teams or webhook URL.
        token_env: Variable holding a bearer token for a webhook (``Authorization: Bearer …``).
        smtp_env: Variable holding the SMTP server as an Apprise ``mailto://`` / ``mailtos://`` URL.
        to: E-mail recipients.
        sender: E-mail ``From`` address (YAML key ``from``); empty: the SMTP URL's, else Apprise's.
    """

    name: str
    type: str
    url_env: str = ""
    token_env: str = ""
    smtp_env: str = ""
    to: tuple[str, ...] = ()
    sender: str = ""

    def env_names(self) -> tuple[str, ...]:
        """The environment variables this channel reads."""
        return tuple(v for v in (self.url_env, self.smtp_env, self.token_env) if v)


# --- the rules file --------------------------------------------------------------------------------


def parse_channel(where: str, raw: Any, default_name: str = "") -> ChannelSpec:
    """A channel from its YAML mapping.

    Args:
        where: Location for error messages (file, rule, channel).
        raw: The mapping (``type`` plus the type's fields, optional ``name``).
        default_name: Name when the mapping has none (inline channels: ``<rule>.<type>``).

    Raises:
        ValueError: Not a mapping, unknown type or field, a URL or secret written in the file, a
            field that is not an environment variable name, a bad address; naming ``where`` and the field.
    """
    if not isinstance(raw, Mapping):
        raise ValueError(
            f"{where}: expected a mapping like {{type: slack, url_env: SLACK_WEBHOOK_URL}} "
            "or the name of a channel under 'channels:'"
        )
    kind = raw.get("type")
    if kind not in CHANNEL_TYPES:
        raise ValueError(f"{where}, field 'type': expected one of {list(CHANNEL_TYPES)}, got {kind!r}")
    known = ("type", "name", *_FIELDS[kind])
    for key, value in raw.items():
        _refuse_literal_secret(where, kind, str(key), value, known)
    missing = [k for k in _REQUIRED[kind] if not raw.get(k)]
    if missing:
        raise ValueError(f"{where}: a {kind} channel needs {', '.join(repr(k) for k in missing)}")
    for key in ("url_env", "token_env", "smtp_env"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not _ENV_NAME.fullmatch(value)):
            raise ValueError(
                f"{where}, field {key!r}: must name an environment variable (letters, digits and _, "
                "e.g. SLACK_WEBHOOK_URL); the secret itself never goes in the rules file"
            )
    name = raw.get("name", default_name or kind)
    if not isinstance(name, str) or not _CHANNEL_NAME.fullmatch(name) or name in RESERVED_NAMES:
        raise ValueError(
            f"{where}, field 'name': {name!r} must be 1-64 letters, digits, '_', '.', ':' or '-' "
            f"and not one of {sorted(RESERVED_NAMES)} (the monitor's own sinks)"
        )
    return ChannelSpec(
        name=name,
        type=kind,
        url_env=raw.get("url_env") or "",
        token_env=raw.get("token_env") or "",
        smtp_env=raw.get("smtp_env") or "",
        to=_addresses(where, "to", raw.get("to")),
        sender=_sender(where, raw.get("from")),
    )


def _refuse_literal_secret(where: str, kind: str, key: str, value: Any, known: Sequence[str]) -> None:
    texts = value if isinstance(value, list) else [value]
    holds_url = any(isinstance(v, str) and "://" in v for v in texts)
    if key not in known:
        if holds_url or any(h in key.lower() for h in _SECRET_KEY_HINTS):
            variable = "smtp_env" if kind == "email" else "token_env" if "token" in key.lower() else "url_env"
            raise ValueError(
                f"{where}, field {key!r}: secrets never go in the rules file; put the value in an "
                f"environment variable and give its name as {variable!r}"
            )
        raise ValueError(f"{where}, field {key!r}: unknown; a {kind} channel takes {list(known)}")
    if holds_url:
        raise ValueError(
            f"{where}, field {key!r}: holds a URL; URLs carry secrets and never go in the rules file "
            "(name an environment variable with 'url_env' or 'smtp_env')"
        )


def _addresses(where: str, key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{where}, field {key!r}: expected an e-mail address or a list of them")
    bad = [v for v in values if not _EMAIL.fullmatch(v.strip())]
    if bad:
        raise ValueError(f"{where}, field {key!r}: {bad[0]!r} is not an e-mail address")
    return tuple(v.strip() for v in values)


def _sender(where: str, value: Any) -> str:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{where}, field 'from': expected one e-mail address")
    return _addresses(where, "from", value)[0] if value else ""


def parse_channel_section(where: str, raw: Any) -> dict[str, ChannelSpec]:
    """The top-level ``channels:`` mapping of a rules file (name -> channel).

    Raises:
        ValueError: Not a mapping of names to channel mappings, or a bad channel (see :func:`parse_channel`).
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: 'channels' must map channel names to channels")
    return {str(n): parse_channel(f"{where}: channel {n!r}", c, default_name=str(n)) for n, c in raw.items()}


def parse_rule_channels(
    where: str, rule_name: str, raw: Any, named: Mapping[str, ChannelSpec]
) -> tuple[ChannelSpec, ...]:
    """A rule's ``channels:`` list: names of shared channels and inline channel mappings.

    Raises:
        ValueError: An unknown channel name, a bad inline channel or the same channel twice.
    """
    if raw is None:
        return ()
    entries = [raw] if isinstance(raw, str | Mapping) else raw
    if not isinstance(entries, list):
        raise ValueError(f"{where}, field 'channels': expected a list of channel names or mappings")
    specs = []
    for j, entry in enumerate(entries, 1):
        if isinstance(entry, str):
            if entry not in named:
                raise ValueError(
                    f"{where}, field 'channels': unknown channel {entry!r}; defined under 'channels:': "
                    f"{sorted(named)}"
                )
            specs.append(named[entry])
        else:
            kind = entry.get("type", "") if isinstance(entry, Mapping) else ""
            default = f"{_UNSAFE_NAME_CHARS.sub('-', rule_name)[:48]}.{kind}"
            specs.append(parse_channel(f"{where}, channel {j}", entry, default_name=default))
    names = [s.name for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(
            f"{where}, field 'channels': {twice[0]!r} is listed twice (give inline channels a 'name:')"
        )
    return tuple(specs)


def distinct_channels(where: str, specs: Iterable[ChannelSpec]) -> dict[str, ChannelSpec]:
    """Channels by name; one name must mean one channel across all rules.

    Raises:
        ValueError: Two different channels under one name.
    """
    found: dict[str, ChannelSpec] = {}
    for spec in specs:
        if found.setdefault(spec.name, spec) != spec:
            raise ValueError(
                f"{where}: two different channels are named {spec.name!r}; give each its own 'name:'"
            )
    return found


# --- sinks ----------------------------------------------------------------------------------------


def build_channel_sinks(
    specs: Iterable[ChannelSpec],
    *,
    allow: AllowList = AllowList(),
    timeout: float = 5.0,
    dashboard_url: str = "",
    environ: Mapping[str, str] | None = None,
    where: str = "alert rules",
) -> dict[str, AlertSink]:
    """A sink per channel, its secrets read from the environment now (name -> sink).

    Slack, Teams and e-mail become :class:`~apps.finance_monitor.apprise_sink.AppriseSink`\\ s,
    webhooks :class:`~core.webhooks.WebhookSink`\\ s (the alert JSON, an
    ``Idempotency-Key``, the connected address checked). Teams and webhook hosts are checked against
    the public-address rule now (a name that does not resolve yet is only logged: every attempt
    checks again).

    Args:
        specs: The channels of the rules (:func:`distinct_channels` of every rule's ``channels``).
        allow: Hosts and networks exempt from the public-address rule (``webhooks: allow:``).
        timeout: Seconds to connect and per read, per attempt.
        dashboard_url: Base URL of the suite for the link in messages (empty: none).
        environ: Where the variables are read (default ``os.environ``).
        where: The rules file, for error messages.

    Raises:
        ValueError: A variable that is not set or does not hold a URL of its channel's type, a
            forbidden address, or a bad ``dashboard_url``: one line naming the file, the channel and
            the variable, never its value.
    """
    env = os.environ if environ is None else environ
    if dashboard_url and urlsplit(dashboard_url).scheme not in ("http", "https"):
        raise ValueError(f"dashboard_url: expected an http:// or https:// URL, got {dashboard_url!r}")
    sinks: dict[str, AlertSink] = {}
    for spec in specs:
        for variable in spec.env_names():
            if not env.get(variable, "").strip():
                raise ValueError(
                    f"{where}: channel {spec.name!r} ({spec.type}): environment variable {variable} "
                    "is not set"
                )
        try:
            sinks[spec.name] = _sink(spec, env, allow, timeout, dashboard_url)
        except ValueError as err:  # UnsafeWebhookURL included
            raise ValueError(
                f"{where}: channel {spec.name!r} ({spec.type}): {clean_error(str(err))}"
            ) from None
    return sinks


def _sink(
    spec: ChannelSpec, env: Mapping[str, str], allow: AllowList, timeout: float, dashboard_url: str
) -> AlertSink:
    if spec.type == "webhook":
        url = env[spec.url_env].strip()
        token = env[spec.token_env].strip() if spec.token_env else ""
        REDACT.add({*url_secrets(url), token})
        try:
            check_webhook_url(url, allow)
        except OSError as err:
            logger.warning(
                "Webhook host does not resolve", extra={"target": mask_url(url), "error": str(err)}
            )
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return WebhookSink(url, allow=allow, timeout=timeout, headers=headers, name=spec.name)
    variable = spec.smtp_env if spec.type == "email" else spec.url_env
    url = _with_recipients(spec, env[variable].strip())
    try:
        sink = AppriseSink(
            spec.name,
            url,
            schemes=_SCHEMES[spec.type],
            target=_target(spec, url),
            check_host=spec.type == "teams",
            allow=allow,
            timeout=timeout,
            dashboard_url=dashboard_url,
            min_interval_s=_MIN_INTERVAL_S[spec.type],
        )
    except ValueError as err:
        raise ValueError(
            f"environment variable {variable} does not hold a usable {spec.type} URL "
            f"({_URL_HINTS[spec.type]}): {err}"
        ) from None
    try:
        sink.check_host()
    except OSError as err:
        logger.warning("Channel host does not resolve", extra={"sink": spec.name, "error": str(err)})
    return sink


def _with_recipients(spec: ChannelSpec, url: str) -> str:
    """An SMTP URL with the channel's recipients (``to``), sender (``from``) and plain text as parameters."""
    if spec.type != "email":
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("to", "from", "format")]
    query += [("to", ",".join(spec.to)), ("format", "text")]
    if spec.sender:
        query.append(("from", spec.sender))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _target(spec: ChannelSpec, url: str) -> str:
    """Where a channel sends, for people: hosts, recipients and variable names, never a secret."""
    if spec.type == "slack":
        return f"slack (${spec.url_env})"
    try:
        parts = urlsplit(url)
        host = dict(parse_qsl(parts.query)).get("smtp") or parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        host, port = "?", ""
    if spec.type == "email":
        return f"email to {', '.join(spec.to)} via {host}{port} (${spec.smtp_env})"
    return f"teams: {host}{port} (${spec.url_env})"
