"""What every bus source and publisher offers, whatever the broker, and their settings.

A :class:`BusSource` hands out :class:`BusMessage` batches and forgets a message only when told
to: :meth:`~BusSource.ack` after the consumer has committed what the message carried,
:meth:`~BusSource.dead_letter` for a message that can never be processed (it is recorded on the
broker, then acknowledged), :meth:`~BusSource.release` to have a batch delivered again after a
failure. A message that is neither acknowledged nor dead-lettered, because the process died, is
delivered again, to this consumer after a restart or to another one of its group: delivery is at
least once, and consumers make processing idempotent (a natural key in their store).
"""

from __future__ import annotations

import socket
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self


class BusError(RuntimeError):
    """The broker cannot be reached or refused an operation (the message shows the URL masked)."""


@dataclass(frozen=True)
class BusSettings:
    """Consumer settings of a bus source (a ``bus:`` section in an app's config)."""

    group: str = field(
        default="aigc",
        metadata={"help": "Redis consumer group / NATS durable consumer name (shared by all replicas)."},
    )
    consumer: str = field(
        default="",
        metadata={
            "help": "Redis consumer name of this process; empty: the host name. A restart under the same "
            "name takes up its own unacknowledged messages at once."
        },
    )
    batch: int = field(default=256, metadata={"help": "Most messages fetched (and committed) at a time."})
    wait_s: float = field(default=1.0, metadata={"help": "How long a fetch waits for new messages."})
    claim_idle_s: float = field(
        default=60.0,
        metadata={"help": "Redis: take over messages another consumer has left unacknowledged this long."},
    )
    ack_wait_s: float = field(
        default=30.0,
        metadata={"help": "NATS: deliver a message again when it is unacknowledged this long."},
    )
    pipeline: bool = field(
        default=True,
        metadata={
            "help": "Fetch the next batch and prepare it (parse, model) while the current one commits; each "
            "batch is still acknowledged only after its own commit."
        },
    )
    max_failures: int = field(
        default=5, metadata={"help": "Give up after this many consecutive failed batches (broker or store)."}
    )
    max_deliveries: int = field(
        default=20,
        metadata={
            "help": "Dead-letter a message delivered more often than this without an ack (the consumer dies "
            "on it: no crash loop); 0: no limit."
        },
    )

    def consumer_name(self) -> str:
        """:attr:`consumer`, or the host name when it is empty."""
        return self.consumer or socket.gethostname() or "aigc"


@dataclass(frozen=True)
class BusMessage:
    """One message as delivered.

    Attributes:
        id: The broker's id of the message (Redis entry id, NATS stream sequence).
        data: The payload.
        deliveries: How many times it has been delivered (1 the first time).
        ref: The broker's handle, used by the source to acknowledge it.
    """

    id: str
    data: bytes
    deliveries: int = 1
    ref: Any = field(default=None, repr=False, compare=False)


class BusSource(ABC):
    """A consumer's view of a stream or subject: fetch, then acknowledge what was committed."""

    #: The URL with secrets masked, for logs and records.
    url: str

    @abstractmethod
    def fetch(self, max_messages: int, wait_s: float) -> list[BusMessage]:
        """Up to ``max_messages``, waiting at most ``wait_s`` seconds when none is ready.

        Messages this consumer was given before and never acknowledged (a restart after a kill)
        come first, then messages of dead consumers, then new ones. A consumer holds at most two
        batches unsettled (the one it commits and the one fetched ahead of it, see
        :func:`core.bus.consumer.consume`); acknowledge, dead-letter or release each (a batch held
        longer than the broker's timeout is delivered again).

        Raises:
            BusError: The broker is unreachable.
        """

    @abstractmethod
    def ack(self, messages: Sequence[BusMessage]) -> None:
        """Forget ``messages``: what they carried is committed.

        Raises:
            BusError: The broker is unreachable (the messages will be delivered again).
        """

    @abstractmethod
    def dead_letter(self, message: BusMessage, reason: str) -> None:
        """Record ``message`` and ``reason`` on the broker's dead-letter stream, then acknowledge it.

        Raises:
            BusError: The broker is unreachable (the message will be delivered again).
        """

    @abstractmethod
    def extend(self, messages: Sequence[BusMessage]) -> None:
        """``messages`` are still being worked on: restart the broker's timeout for them.

        Without it a batch whose commit outlasts the timeout (``ack_wait_s``, ``claim_idle_s``) is
        delivered again, to another replica too, while this one still holds it.
        :func:`core.bus.consumer.consume` calls it from a second thread every third of the timeout
        while a batch is handled.

        Raises:
            BusError: The broker is unreachable.
        """

    @abstractmethod
    def release(self, messages: Sequence[BusMessage]) -> None:
        """Processing ``messages`` failed: deliver them again (to this consumer or another)."""

    @abstractmethod
    def pending(self) -> int:
        """Messages of the group not acknowledged yet: delivered to a consumer, or not delivered at all.

        Raises:
            BusError: The broker is unreachable.
        """

    @abstractmethod
    def close(self) -> None:
        """Close the connection (unacknowledged messages stay pending on the broker)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class BusPublisher(ABC):
    """Appends messages to a stream or subject."""

    #: The URL with secrets masked.
    url: str

    @abstractmethod
    def publish(self, messages: Sequence[tuple[str, bytes]]) -> int:
        """Append ``(key, payload)`` pairs in order; the key lets the broker drop repeats (NATS
        ``Nats-Msg-Id``) and is stored beside the payload (Redis field ``key``).

        Returns:
            The number of messages the broker confirmed.

        Raises:
            BusError: The broker is unreachable or refused a message.
        """

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = ["BusError", "BusMessage", "BusPublisher", "BusSettings", "BusSource"]
