"""Publishing news to a message bus: the producer side of ``aigc finance monitor --source``.

``aigc finance publish --to redis://HOST/STREAM FILE...`` reads each file like the folder
ingestion does (CSV, JSON Lines, RSS, Atom; every record checked, a bad one stops the command
before anything is sent), then appends one message per item, keyed by its id
(:func:`~apps.finance_monitor.sources.encode_message`). Publishing the same file twice sends its
items twice; the monitor stores each id once, and NATS drops repeats within its duplicate window
(``Nats-Msg-Id``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from apps.finance_monitor.sources import NewsItem, encode_message, read_news
from core.bus import open_publisher

logger = logging.getLogger(__name__)

CHUNK = 1000  # messages per publish call


def publish_items(url: str, items: Iterable[NewsItem], chunk: int = CHUNK) -> int:
    """Publish ``items`` in order to the bus at ``url``.

    Returns:
        The number of messages the broker stored.

    Raises:
        ValueError: Not a bus URL.
        BusError: The broker is unreachable or refused a message.
    """
    sent = 0
    batch: list[tuple[str, bytes]] = []
    with open_publisher(url) as publisher:
        for item in items:
            batch.append((item.id, encode_message(item)))
            if len(batch) >= chunk:
                sent += publisher.publish(batch)
                batch = []
        if batch:
            sent += publisher.publish(batch)
        logger.info("Published news", extra={"url": publisher.url, "messages": sent})
    return sent


def publish_files(url: str, paths: Sequence[str | Path], *, default_source: str | None = None) -> int:
    """Read every file first (all must be valid), then publish their items in file order.

    Returns:
        The number of messages the broker stored.

    Raises:
        FileNotFoundError: A file is missing.
        DataError: A bad record (naming file, row and field); nothing was published.
        ValueError: Not a bus URL.
        BusError: The broker is unreachable.
    """
    items = [item for path in paths for item in read_news(path, default_source=default_source)]
    return publish_items(url, items)
