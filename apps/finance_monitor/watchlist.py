"""The watch list: the companies the monitor links news to, read from a CSV of ticker, name, aliases.

File format (CSV, TSV, JSON Lines or Parquet, read by :mod:`core.io.tables`)::

    ticker,name,aliases
    AAPL,Apple Inc.,Apple
    GOOGL,Alphabet Inc.,Google|$GOOG
    BRK.B,Berkshire Hathaway Inc.,Berkshire|$BRK.A

* ``ticker``: the entity key (upper-cased), 1-6 letters or digits starting with a letter, with an
  optional class suffix (``BRK.B``). Every ticker is unique.
* ``name``: the company's name. Legal suffixes are dropped for matching (:func:`company_core`:
  ``Apple Inc.`` is matched as ``Apple``, ``The Goldman Sachs Group, Inc.`` as ``Goldman Sachs``).
* ``aliases`` (optional column): other names separated by ``|``; an alias starting with ``$`` is
  another cashtag of the company (``$GOOG`` for Alphabet's second share class).

No name, alias or cashtag may belong to two companies (compared case- and accent-insensitively).
A bad row raises :class:`~apps.finance_monitor.errors.DataError` naming file, row and field.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from apps.finance_monitor.errors import DataError
from core.errors import check_path_kind
from core.io.tables import Row, read_rows

logger = logging.getLogger(__name__)

TICKER = re.compile(r"[A-Z][A-Z0-9]{0,5}(?:\.[A-Z]{1,2})?")
ALIAS_SEPARATOR = "|"
# Legal forms and group words dropped from the end of a name (repeatedly: "Alibaba Group Holding
# Limited" -> "Alibaba"), compared without dots and case: "p.l.c." is "plc", "S.A." is "sa".
LEGAL_SUFFIXES: frozenset[str] = frozenset(
    {
        "inc", "incorporated", "corp", "corporation", "co", "company", "cos", "companies", "ltd",
        "limited", "llc", "lp", "llp", "plc", "ag", "sa", "se", "nv", "bv", "oyj", "ab", "asa", "as",
        "gmbh", "spa", "kk", "kgaa", "holding", "holdings", "group", "&", "and",
    }
)  # fmt: skip
_TRAILING = re.compile(r"[\s,]+$")
_LAST_WORD = re.compile(r"[\s,]+([^\s,]+)$")


@dataclass(frozen=True)
class Company:
    """One watch-list entry.

    Attributes:
        ticker: Entity key, upper case (``AAPL``).
        name: Name as written in the file (``Apple Inc.``).
        aliases: Other names (``Apple``), without the cashtags.
        cashtags: Cashtags besides ``$ticker``, upper case without ``$`` (``GOOG``).
        row: The file row it came from (for messages).
        line: The line where that row starts.
    """

    ticker: str
    name: str
    aliases: tuple[str, ...] = ()
    cashtags: tuple[str, ...] = ()
    row: int | None = None
    line: int | None = None

    def names(self) -> list[str]:
        """Every name to match in text: the name without its legal suffix, then the aliases (deduplicated)."""
        found = [company_core(self.name), *self.aliases]
        return list(dict.fromkeys(n for n in found if n))


def company_core(name: str) -> str:
    """``name`` without a leading "The" and trailing legal forms (Inc, Corp, plc, AG, SA, Group, ...).

    Examples: ``"Apple Inc."`` -> ``"Apple"``, ``"Merck & Co., Inc."`` -> ``"Merck"``,
    ``"Siemens AG"`` -> ``"Siemens"``, ``"BP p.l.c."`` -> ``"BP"``. A name made only of such words
    is kept whole (``"Group SA"``), and so is a one-word name (``"KeyCorp"``).
    """
    core = " ".join(name.split())
    if core.lower().startswith("the ") and len(core) > 4:
        core = core[4:]
    while True:
        match = _LAST_WORD.search(core)
        if match is None or match.group(1).replace(".", "").lower() not in LEGAL_SUFFIXES:
            break
        core = _TRAILING.sub("", core[: match.start()])
    core = core.rstrip(" ,")
    return name.strip() if not core or core.replace(".", "").lower() in LEGAL_SUFFIXES else core


def fold(text: str) -> str:
    """Case- and accent-insensitive form of ``text`` (NFKD, combining marks dropped, casefolded).

    Curly apostrophes become ``'`` and Unicode dashes ``-``, so ``McDonald’s`` folds like ``McDonald's``.
    """
    return "".join(fold_char(c) for c in text)


_PUNCT = {
    "\u2019": "'",
    "\u2018": "'",
    "\u02bc": "'",
    "\u00b4": "'",
    "\u2010": "-",
    "\u2011": "-",
    "\u2013": "-",
}


def fold_char(char: str) -> str:
    """:func:`fold` of one character (may be empty or longer than one character: ``ß`` -> ``ss``)."""
    char = _PUNCT.get(char, char)
    decomposed = unicodedata.normalize("NFKD", char)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


class WatchList:
    """The companies to link news to, with lookups by ticker, cashtag and folded name.

    Args:
        companies: The entries (tickers, names, aliases and cashtags must not collide).
        source: Where they came from (for messages).

    Raises:
        ValueError: Two entries claim the same ticker, cashtag or name.
    """

    def __init__(self, companies: Sequence[Company], source: str = "<watch list>") -> None:
        self.companies = tuple(companies)
        self.source = source
        self._by_ticker: dict[str, Company] = {}
        self._by_cashtag: dict[str, Company] = {}
        self._by_name: dict[str, Company] = {}
        for company in self.companies:
            self._add(company)

    def _add(self, company: Company) -> None:
        if company.ticker in self._by_ticker:
            raise _clash(self.source, company, "ticker", company.ticker, self._by_ticker[company.ticker])
        self._by_ticker[company.ticker] = company
        for tag in (company.ticker, *company.cashtags):
            other = self._by_cashtag.get(tag)
            if other is not None and other is not company:
                field = "ticker" if tag == company.ticker else "aliases"
                raise _clash(self.source, company, field, f"${tag}", other)
            self._by_cashtag[tag] = company
        for name in company.names():
            key = fold(name)
            other = self._by_name.get(key)
            if other is not None and other is not company:
                field = "name" if name == company_core(company.name) else "aliases"
                raise _clash(self.source, company, field, name, other)
            self._by_name[key] = company

    def __len__(self) -> int:
        return len(self.companies)

    def __iter__(self) -> Iterator[Company]:
        return iter(self.companies)

    def __contains__(self, ticker: object) -> bool:
        return ticker in self._by_ticker

    @property
    def tickers(self) -> list[str]:
        """Every ticker, in file order."""
        return list(self._by_ticker)

    def get(self, ticker: str) -> Company | None:
        """The company with this ticker, if listed."""
        return self._by_ticker.get(ticker)

    def by_cashtag(self, tag: str) -> Company | None:
        """The company a cashtag (without ``$``, any case) stands for, if listed."""
        return self._by_cashtag.get(tag.upper())

    def by_name(self, name: str) -> Company | None:
        """The company whose name or alias is ``name`` (legal suffixes, case and accents ignored)."""
        return self._by_name.get(fold(name)) or self._by_name.get(fold(company_core(name)))

    @property
    def version(self) -> str:
        """A short hash of the entries: links made with another version are out of date."""
        doc = [[c.ticker, c.name, list(c.aliases), list(c.cashtags)] for c in self.companies]
        return hashlib.sha256(json.dumps(doc, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def _clash(source: str, company: Company, field: str, value: str, other: Company) -> DataError:
    problem = f"{value!r} already belongs to {other.ticker}" + (f" (row {other.row})" if other.row else "")
    problem += "; each ticker, name and alias names one company"
    return DataError(source, problem, row=company.row, line=company.line, field=field)


def load_watchlist(path: str | Path) -> WatchList:
    """Read a watch list file (see the module docstring for the columns).

    Raises:
        FileNotFoundError: No such file.
        DataError: A bad row (naming file, row and field), a collision, or no rows.
    """
    path = check_path_kind(path, "file")
    if not path.is_file():
        raise FileNotFoundError(f"watch list not found: {path}")
    companies: list[Company] = []
    for row in read_rows(path, columns=["ticker", "name"], error=DataError, lower_header=True):
        ticker = row.text("ticker").lstrip("$").upper()
        if not TICKER.fullmatch(ticker):
            raise row.error(
                f"{row.text('ticker')!r} is not a ticker (1-6 letters or digits starting with a letter, "
                "optionally a class like BRK.B)",
                field="ticker",
            )
        name = " ".join(row.text("name").split())
        if not name:
            raise row.error("empty company name", field="name")
        aliases, cashtags = _aliases(row)
        companies.append(Company(ticker, name, aliases, cashtags, row.row, row.line))
    if not companies:
        raise DataError(
            path, "no companies (the file has a header or nothing); add rows of ticker,name,aliases"
        )
    watchlist = WatchList(companies, source=str(path))
    logger.info("Watch list loaded", extra={"path": str(path), "companies": len(watchlist)})
    return watchlist


def _aliases(row: Row) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A row's names and cashtags from its ``aliases`` cell."""
    cell = row.text("aliases")
    names: list[str] = []
    tags: list[str] = []
    if not cell:
        return (), ()

    def error(problem: str) -> Exception:
        return row.error(problem, field="aliases")

    for part in cell.split(ALIAS_SEPARATOR):
        alias = " ".join(part.split())
        if not alias:
            raise error(f"empty alias in {cell!r}; separate aliases with a single '|'")
        if alias.startswith("$"):
            tag = alias[1:].upper()
            if not TICKER.fullmatch(tag):
                raise error(f"{alias!r} is not a cashtag like $GOOG")
            tags.append(tag)
        elif not any(c.isalnum() for c in alias):
            raise error(f"alias {alias!r} has no letters or digits")
        else:
            names.append(alias)
    return tuple(dict.fromkeys(names)), tuple(dict.fromkeys(tags))
