"""Settings of the HTTP API (``aigc serve``), from defaults and ``AIGC_API_*`` environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class ApiSettings:
    """Limits of the HTTP API; every field can be set with ``AIGC_API_<FIELD>`` (upper case)."""

    max_body_bytes: int = field(
        default=1_048_576, metadata={"help": "Largest request body in bytes (413 above it)."}
    )
    rate_per_s: float = field(
        default=20.0, metadata={"help": "Requests a second per API key on average (0 turns limits off)."}
    )
    burst: int = field(default=100, metadata={"help": "Requests a key may send at once after a pause."})
    auth_cache_s: float = field(
        default=5.0,
        metadata={"help": "Seconds a verified key is trusted before the database is asked again."},
    )
    load_timeout_s: float = field(
        default=600.0, metadata={"help": "Seconds the service waits for the apps' models at start."}
    )

    @classmethod
    def from_env(cls, **overrides: object) -> ApiSettings:
        """Defaults, then ``AIGC_API_*`` variables, then ``overrides``.

        Raises:
            ValueError: A variable that is not a number (naming it).
        """
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = os.environ.get(f"AIGC_API_{f.name.upper()}")
            if raw is None:
                continue
            kind = int if f.type in ("int", int) else float
            try:
                values[f.name] = kind(raw)
            except ValueError:
                raise ValueError(f"AIGC_API_{f.name.upper()} must be a number, got {raw!r}") from None
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


__all__ = ["ApiSettings"]
