"""Entity linking: which companies (tickers) a news item mentions.

:class:`EntityLinker` finds, in a headline (and body):

* **cashtags** (``$AAPL``, ``$goog``): with a watch list only those of listed companies (or their
  ``$alias`` cashtags), without one every ticker-like cashtag;
* **names and aliases** of the watch list's companies (``Apple``, ``Goldman Sachs``, ``J&J``),
  with the company's legal suffix dropped (:func:`~apps.finance_monitor.watchlist.company_core`);
* **bare tickers** (``AAPL shares rise``) of three or more characters, written in upper case, that are
  not common words (``ALL``, ``NOW``, ``KEY``, ... in :data:`COMMON_WORD_TICKERS`);
* organisations found by an optional named-entity recogniser (:data:`Recognizer`), looked up by
  name in the watch list. No NER model ships with the suite or is packaged for offline install
  (spaCy's models are not on PyPI), so none is used by default; the hook takes any callable.

Names are matched in one pass of an Aho-Corasick automaton (``pyahocorasick``) over the text folded
for case and accents, then each hit is checked on the original text:

* **word boundaries**: no letter or digit just before or after (``Applebee's`` is not Apple;
  ``Apple's`` and ``Microsoft-backed`` are); nothing inside a URL;
* **case**: a name written with a capital must start with one in the text (``apple pie`` is not
  Apple), an all-capitals alias (``IBM``, ``GE``) must be all capitals, a bare ticker must be
  exactly upper case, and bare tickers are ignored in headlines written all in capitals;
* **overlaps**: the longest hit wins, cashtags before names before bare tickers.

Items also carry the tickers given by their source (a ``tickers`` column); those on the watch list
(all of them, without one) are linked too. Title-case idioms (``Upset The Apple Cart``) still link
(see docs/benchmarks/finance.md for the measured precision and recall).
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import ahocorasick
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from apps.finance_monitor.sources import CASHTAG
from apps.finance_monitor.storage import (
    Item,
    LinkRow,
    entities_for_items,
    items_to_link,
    store_links,
)
from apps.finance_monitor.watchlist import TICKER, WatchList, fold, fold_char
from core.progress import progress_bar
from core.storage import session_scope

logger = logging.getLogger(__name__)

#: Version of the matching rules; stored with every link, so a change re-links on ``relink``.
LINKER_VERSION = "link-v1"
#: Method of a link, in order of preference when two hits overlap.
METHODS: tuple[str, ...] = ("cashtag", "name", "ner", "ticker", "source")
#: Tickers that are ordinary words or abbreviations: matched as ``$TICKER`` or by name, never bare.
COMMON_WORD_TICKERS: frozenset[str] = frozenset(
    {
        "ALL", "ARE", "BIG", "CAN", "CAR", "CAT", "CEO", "CFO", "COP", "COST", "DIS", "EPS", "ETF",
        "FOR", "FUN", "GDP", "HAS", "HON", "IPO", "KEY", "LOVE", "LOW", "MAR", "MET", "NEW", "NOK",
        "NOW", "ONE", "OUT", "PEP", "PLAY", "RUN", "SEE", "SHOP", "SNAP", "SPOT", "THE", "TWO",
        "USA", "USB", "USD", "WBA", "YOU",
    }
)  # fmt: skip
#: A recogniser: the ``(start, end)`` character spans of organisation names in a text.
Recognizer = Callable[[str], Iterable[tuple[int, int]]]

_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_MIN_BARE_TICKER = 3


@dataclass(frozen=True)
class Mention:
    """One link of a text to an entity.

    Attributes:
        ticker: The entity (watch-list ticker, or the cashtag's ticker without a watch list).
        method: ``cashtag``, ``name``, ``ner``, ``ticker`` or ``source`` (the item's tickers).
        text: The words matched (``$AAPL``, ``Apple``); the ticker for ``source``.
        start: Character offset in the text matched (``-1`` for ``source``).
        end: End offset (exclusive).
    """

    ticker: str
    method: str
    text: str
    start: int = -1
    end: int = -1


class EntityLinker:
    """Links texts to tickers (see the module docstring for the rules).

    Args:
        watchlist: The companies to find; ``None``: cashtags and given tickers only.
        recognizer: Optional NER: spans of organisation names, looked up in the watch list by name.
    """

    def __init__(self, watchlist: WatchList | None = None, recognizer: Recognizer | None = None) -> None:
        self.watchlist = watchlist
        self.recognizer = recognizer
        self._automaton = self._build(watchlist) if watchlist is not None and len(watchlist) else None

    @property
    def version(self) -> str:
        """The rules and watch list behind the links (``link-v1:<watch-list hash>``, ``link-v1:cashtags``)."""
        return f"{LINKER_VERSION}:{self.watchlist.version if self.watchlist is not None else 'cashtags'}"

    @staticmethod
    def _build(watchlist: WatchList) -> ahocorasick.Automaton:
        automaton = ahocorasick.Automaton()
        for company in watchlist:
            for name in company.names():
                key = fold(name)
                automaton.add_word(key, (company.ticker, name, "name", len(key)))
        for ticker in watchlist.tickers:  # after the names: a name written like a ticker stays a name
            key = fold(ticker)
            if len(ticker) >= _MIN_BARE_TICKER and ticker not in COMMON_WORD_TICKERS and key not in automaton:
                automaton.add_word(key, (ticker, ticker, "ticker", len(key)))
        automaton.make_automaton()
        return automaton

    def mentions(self, text: str) -> list[Mention]:
        """Every entity mention in ``text``, in text order (HTML entities such as ``&amp;`` decoded first).

        Offsets refer to the decoded text.
        """
        if "&" in text:
            text = html.unescape(text)
        found = self._cashtags(text)
        if self._automaton is not None:
            found += self._names(text)
        if self.recognizer is not None and self.watchlist is not None:
            found += self._recognised(text)
        return _resolve_overlaps(found)

    def link(self, text: str, tickers: Sequence[str] = ()) -> list[str]:
        """The tickers ``text`` mentions (plus the given ``tickers`` that are valid), first mention first."""
        return list(dict.fromkeys(m.ticker for m in self.link_item(text, None, tickers)))

    def link_item(self, title: str, body: str | None = None, tickers: Sequence[str] = ()) -> list[Mention]:
        """One mention per ticker an item is linked to: from its title, then body, then its given tickers.

        Args:
            title: Headline.
            body: Optional story text.
            tickers: Tickers given by the source (``$`` and case ignored); kept when on the watch list
                (all of them without a watch list).
        """
        seen: dict[str, Mention] = {}
        for mention in [*self.mentions(title), *(self.mentions(body) if body else [])]:
            seen.setdefault(mention.ticker, mention)
        for given in tickers:
            ticker = self._valid_ticker(given.strip().lstrip("$"))
            if ticker is not None and ticker not in seen:
                seen[ticker] = Mention(ticker, "source", ticker)
        return list(seen.values())

    def _valid_ticker(self, tag: str) -> str | None:
        if not tag:
            return None
        if self.watchlist is None:
            tag = tag.upper()
            return tag if TICKER.fullmatch(tag) else None
        company = self.watchlist.by_cashtag(tag)
        return company.ticker if company is not None else None

    def _cashtags(self, text: str) -> list[Mention]:
        out = []
        for match in CASHTAG.finditer(text):
            ticker = self._valid_ticker(match.group(1))
            if ticker is not None:
                out.append(Mention(ticker, "cashtag", match.group(0), match.start(), match.end()))
        return out

    def _names(self, text: str) -> list[Mention]:
        folded, origin = _fold_with_offsets(text)
        urls = [m.span() for m in _URL.finditer(text)]
        shouting = _is_shouting(text)
        out = []
        for last, (ticker, alias, method, length) in self._automaton.iter(folded):
            start = origin[last - length + 1]
            end = origin[last + 1]
            span = text[start:end]
            if not _on_word_boundaries(text, start, end) or any(a <= start < b for a, b in urls):
                continue
            if method == "ticker" and (shouting or span != ticker):
                continue
            if method == "name" and not _case_matches(alias, span):
                continue
            out.append(Mention(ticker, method, span, start, end))
        return out

    def _recognised(self, text: str) -> list[Mention]:
        out = []
        for start, end in self.recognizer(text):
            company = self.watchlist.by_name(text[start:end])
            if company is not None:
                out.append(Mention(company.ticker, "ner", text[start:end], start, end))
        return out


def _fold_with_offsets(text: str) -> tuple[str, list[int]]:
    """``fold(text)`` and, for each folded character (plus one past the end), its index in ``text``."""
    parts: list[str] = []
    origin: list[int] = []
    for i, char in enumerate(text):
        folded = fold_char(char)
        parts.append(folded)
        origin += [i] * len(folded)
    origin.append(len(text))
    return "".join(parts), origin


def _on_word_boundaries(text: str, start: int, end: int) -> bool:
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return not (before.isalnum() or after.isalnum() or before == "$")


def _case_matches(alias: str, span: str) -> bool:
    """Whether ``span`` is written like ``alias``: all capitals for an acronym, else capitalised like it."""
    letters = [c for c in alias if c.isalpha()]
    if not letters:
        return True
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return all(c.isupper() for c in span if c.isalpha())
    first = next((c for c in span if c.isalpha()), "")
    return not letters[0].isupper() or first.isupper()


def _is_shouting(text: str) -> bool:
    """Whether a text is written (nearly) all in capitals, where upper case says nothing about tickers."""
    letters = [c for c in _URL.sub("", text) if c.isalpha()]
    return len(letters) >= 12 and sum(c.isupper() for c in letters) >= 0.8 * len(letters)


def _resolve_overlaps(found: list[Mention]) -> list[Mention]:
    """Leftmost-longest mentions that do not overlap; for equal spans, the first method in :data:`METHODS`."""
    order = sorted(found, key=lambda m: (m.start, -(m.end - m.start), METHODS.index(m.method)))
    kept: list[Mention] = []
    for mention in order:
        if kept and mention.start < kept[-1].end:
            continue
        kept.append(mention)
    return kept


# --- links in the database -------------------------------------------------------------------------


def item_links(linker: EntityLinker, items: Sequence[Item]) -> dict[str, list[LinkRow]]:
    """The links of stored items (title, body and given tickers), ready for :func:`store_links`."""
    watchlist = linker.watchlist
    out: dict[str, list[LinkRow]] = {}
    for item in items:
        mentions = linker.link_item(item.title, item.body, item.tickers or ())
        out[item.id] = [
            LinkRow(
                entity=m.ticker,
                method=m.method,
                mention=m.text,
                name=company.name if watchlist is not None and (company := watchlist.get(m.ticker)) else None,
            )
            for m in mentions
        ]
    return out


def link_stored(session: Session, linker: EntityLinker, items: Sequence[Item]) -> int:
    """Link ``items`` and write their links in ``session``'s transaction (the caller commits).

    Returns:
        The number of links written.
    """
    return store_links(session, item_links(linker, items), linker.version)


@dataclass
class RelinkReport:
    """What :func:`relink` did."""

    items: int = 0
    links: int = 0
    changed: int = 0  # items whose entities differ from before
    linker_version: str = ""


def relink(
    engine: Engine,
    linker: EntityLinker,
    *,
    every: bool = False,
    batch_size: int = 500,
    show_progress_bar: bool = False,
) -> RelinkReport:
    """Link the stored items that ``linker`` has not linked yet (a new watch list re-links everything).

    Each batch is one transaction, so an interrupted run keeps the batches done and the next run
    continues with the rest; a second run finds nothing to do. Alerts already evaluated are not
    re-evaluated: entity rules see the new links on the items that arrive from now on.

    Args:
        engine: Migrated database.
        linker: The linker (its version is recorded with every item).
        every: Re-link every item, even those linked by this version already.
        batch_size: Items per transaction.
        show_progress_bar: Show a tqdm bar.
    """
    report = RelinkReport(linker_version=linker.version)
    after: str | None = None
    with progress_bar(desc="Linking", unit="item", disable=not show_progress_bar) as bar:
        while True:
            with session_scope(engine) as session:
                items = items_to_link(session, linker.version, batch_size, after=after, every=every)
                if not items:
                    break
                before = entities_for_items(session, [item.id for item in items])
                links = item_links(linker, items)
                report.links += store_links(session, links, linker.version)
            report.items += len(items)
            report.changed += sum(
                [link.entity for link in links[item.id]] != before.get(item.id, []) for item in items
            )
            after = items[-1].id
            bar.update(len(items))
    logger.info(
        "Re-linked items",
        extra={"items": report.items, "changed": report.changed, "linker_version": report.linker_version},
    )
    return report
