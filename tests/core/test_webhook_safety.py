"""Webhook URL checks (public addresses only unless allow-listed) and secret masking."""

from __future__ import annotations

import pytest

from core.webhook_safety import (
    AllowList,
    UnsafeWebhookURL,
    check_webhook_url,
    mask_headers,
    mask_url,
)


def fixed(*addresses: str):
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://hooks.slack.com/services/T0AB12CD3/B0CD34EF5/xYzSecretToken1234567890",
            "https://hooks.slack.com/services/***/***/***",
        ),
        (
            "https://alerts.example.com/hook?token=abc&team=ops",
            "https://alerts.example.com/hook?token=***&team=***",
        ),
        ("https://bot:p4ssw0rd@example.com:8443/v1/alerts", "https://***@example.com:8443/v1/alerts"),
        (
            "https://discord.com/api/webhooks/123456789012345678/AbC-dEf",
            "https://discord.com/api/webhooks/***/AbC-dEf",
        ),
        ("http://[::1]:8080/hook#frag", "http://[::1]:8080/hook#***"),
        ("not a url with secret", "***"),
    ],
)
def test_mask_url(url, shown):
    assert mask_url(url) == shown


def test_mask_headers():
    masked = mask_headers(
        {"Authorization": "Bearer x", "X-Api-Key": "k", "X-Signature": "s", "Accept": "json"}
    )
    assert masked == {"Authorization": "***", "X-Api-Key": "***", "X-Signature": "***", "Accept": "json"}


@pytest.mark.parametrize(
    ("addresses", "reason"),
    [
        (("127.0.0.1",), "loopback"),
        (("10.1.2.3",), "private"),
        (("93.184.216.34", "192.168.0.9"), "private"),  # every address counts, not only the first
        (("169.254.169.254",), "link-local"),  # cloud metadata
        (("224.0.0.1",), "multicast"),
        (("240.0.0.1",), "reserved"),
        (("0.0.0.0",), "unspecified"),
        (("::1",), "loopback"),
        (("::ffff:127.0.0.1",), "loopback"),
        (("fe80::1%eth0",), "link-local"),
        (("100.64.0.1",), "not globally routable"),
    ],
)
def test_non_public_addresses_are_refused(addresses, reason):
    with pytest.raises(UnsafeWebhookURL, match=f"a {reason} address") as info:
        check_webhook_url("https://hooks.example.com/x?token=SECRET", resolver=fixed(*addresses))
    assert "SECRET" not in str(info.value)


def test_public_addresses_and_allow_lists_pass():
    check_webhook_url("https://hooks.example.com/x", resolver=fixed("93.184.216.34", "2606:2800:220:1::1"))
    private = fixed("10.1.2.3")
    check_webhook_url("https://router.internal/x", AllowList.parse(["10.0.0.0/8"]), resolver=private)
    check_webhook_url("https://Router.Internal./x", AllowList.parse(["router.internal"]), resolver=private)
    with pytest.raises(UnsafeWebhookURL):
        check_webhook_url("https://router.internal/x", AllowList.parse(["10.9.0.0/16"]), resolver=private)


def test_real_resolution_of_localhost_is_refused():
    with pytest.raises(UnsafeWebhookURL, match="loopback"):
        check_webhook_url("http://localhost:8080/hook")


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "javascript:alert(1)", "http:///x"]
)
def test_bad_schemes_and_hosts(url):
    with pytest.raises(UnsafeWebhookURL):
        check_webhook_url(url, resolver=fixed("93.184.216.34"))


def test_the_refusal_names_where_the_allow_list_is_configured():
    allow = AllowList.parse(["10.9.0.0/16"], where="support config: queue.webhook_allow")
    with pytest.raises(UnsafeWebhookURL, match="listed in support config: queue.webhook_allow"):
        check_webhook_url("https://router.internal/x", allow, resolver=fixed("10.1.2.3"))
    assert allow == AllowList.parse(["10.9.0.0/16"])  # where is not part of equality
