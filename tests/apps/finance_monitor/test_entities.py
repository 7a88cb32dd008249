"""Entity linking: the watch list file (and its bad rows), and the linker's matching rules."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from apps.finance_monitor.entities import EntityLinker
from apps.finance_monitor.errors import DataError
from apps.finance_monitor.watchlist import Company, WatchList, company_core, load_watchlist
from core.paths import project_root
from tests.cli_run import run_aigc

WATCHLIST = """\
ticker,name,aliases
AAPL,Apple Inc.,
GOOGL,Alphabet Inc.,Google|$GOOG
ALL,The Allstate Corporation,
IT,"Gartner, Inc.",
KEY,KeyCorp,
T,AT&T Inc.,
MCD,McDonald's Corporation,McDonalds
NSRGY,Nestlé S.A.,
IBM,International Business Machines Corporation,IBM
TGT,Target Corporation,
BRK.B,Berkshire Hathaway Inc.,Berkshire|$BRK.A
GS,"The Goldman Sachs Group, Inc.",Goldman
"""


@pytest.fixture
def linker(tmp_path) -> EntityLinker:
    path = tmp_path / "watchlist.csv"
    path.write_text(WATCHLIST, encoding="utf-8")
    return EntityLinker(load_watchlist(path))


def tickers(linker: EntityLinker, text: str) -> list[str]:
    return linker.link(text)


@pytest.mark.parametrize(
    ("name", "core"),
    [
        ("Apple Inc.", "Apple"),
        ("The Goldman Sachs Group, Inc.", "Goldman Sachs"),
        ("Merck & Co., Inc.", "Merck"),
        ("Eli Lilly and Company", "Eli Lilly"),
        ("Siemens AG", "Siemens"),
        ("BP p.l.c.", "BP"),
        ("Nestlé S.A.", "Nestlé"),
        ("ASML Holding N.V.", "ASML"),
        ("Alibaba Group Holding Limited", "Alibaba"),
        ("Johnson & Johnson", "Johnson & Johnson"),
        ("KeyCorp", "KeyCorp"),
        ("Group SA", "Group SA"),  # only legal words: kept whole
    ],
)
def test_company_core_drops_legal_suffixes(name, core):
    assert company_core(name) == core


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$AAPL and $goog rally; $BRK.A flat", ["AAPL", "GOOGL", "BRK.B"]),  # cashtags, any case, aliases
        ("$SPY and $QQQ slip", []),  # cashtags not on the watch list
        ("Apple's thud; apple pie at Applebee's", ["AAPL"]),  # possessive yes, lower case and prefix no
        ("Microsoft-backed startup sues Google", ["GOOGL"]),  # hyphen is a boundary
        ("Alphabet Inc. and Goldman Sachs Group report", ["GOOGL", "GS"]),  # name without its suffix
        ("AAPL, GOOGL up premarket", ["AAPL", "GOOGL"]),  # bare tickers in upper case
        ("aapl up premarket", []),  # a bare ticker must be upper case
        ("ALL IT TAKES IS ONE KEY DECISION", []),  # common-word tickers never bare
        ("It is all about the key rate", []),
        ("Allstate and Gartner beat; KeyCorp misses", ["ALL", "IT", "KEY"]),  # by name they link
        ("Price target raised at Target", ["TGT"]),  # lower-case 'target' is not the company
        ("AT&amp;T and McDonald’s shares rise", ["T", "MCD"]),  # HTML entity, curly apostrophe
        ("Nestle, NESTLÉ and ｎｅｓｔｌé", ["NSRGY"]),  # accents and full-width letters folded
        ("IBM beats; ibm.com down; Ibm", ["IBM"]),  # an acronym alias needs capitals
        ("More at https://t.co/AAPL0Apple and www.Google.com/x", []),  # nothing inside URLs
        ("APPLE AND GOOGLE SHARES JUMP ON AAPL NEWS", ["AAPL", "GOOGL"]),  # shouting: names yes
        ("GOOGL SHARES: ANALYSTS UPGRADE THE STOCK", []),  # shouting: bare tickers say nothing
        ("#Apple and @Google", ["AAPL", "GOOGL"]),  # hashtags and handles
    ],
)
def test_linker_rules(linker, text, expected):
    assert tickers(linker, text) == expected


def test_overlaps_keep_the_longest_and_cashtags_first(linker):
    mentions = linker.mentions("$GOOGL: Google and Berkshire Hathaway news")
    assert [(m.ticker, m.method, m.text) for m in mentions] == [
        ("GOOGL", "cashtag", "$GOOGL"),
        ("GOOGL", "name", "Google"),
        ("BRK.B", "name", "Berkshire Hathaway"),  # not the shorter alias "Berkshire"
    ]


def test_given_tickers_are_validated_against_the_watch_list(linker):
    mentions = linker.link_item("Quiet day", "Apple in the body", tickers=["$goog", "ZZZZ", "AAPL"])
    assert [(m.ticker, m.method) for m in mentions] == [("AAPL", "name"), ("GOOGL", "source")]


def test_without_a_watch_list_cashtags_and_given_tickers_link():
    linker = EntityLinker()
    assert linker.link("$acme beats; Apple and AAPL", tickers=["nwde", "bad ticker!"]) == ["ACME", "NWDE"]
    assert linker.version == "link-v1:cashtags"


def test_version_follows_the_watch_list(linker):
    other = EntityLinker(WatchList([Company("AAPL", "Apple Inc.")]))
    assert linker.version.startswith("link-v1:") and linker.version != other.version


def test_recognizer_hook_maps_organisations_by_name(linker):
    def orgs(text: str) -> list[tuple[int, int]]:
        start = text.index("Goldman Sachs Group Inc")
        return [(start, start + len("Goldman Sachs Group Inc"))]

    hooked = EntityLinker(linker.watchlist, recognizer=orgs)
    mentions = hooked.mentions("Shares of Goldman Sachs Group Inc fell")
    assert [(m.ticker, m.method) for m in mentions] == [("GS", "ner")]


def test_shipped_watch_lists_load():
    assert len(load_watchlist(project_root() / "configs" / "finance_watchlist.csv")) > 100
    from apps.finance_monitor.sample_data import SAMPLE_WATCHLIST

    assert "NWDE" in load_watchlist(SAMPLE_WATCHLIST)


# --- bad watch lists ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ("ticker,name\nAAPL,Apple\nnot a ticker,Oops\n", "row 2 (line 3), field 'ticker'"),
        ("ticker,name\nAAPL,\n", "row 1 (line 2), field 'name'"),
        ("ticker,name,aliases\nAAPL,Apple,Mac||iPhone\n", "row 1 (line 2), field 'aliases'"),
        ("ticker,name,aliases\nAAPL,Apple,$12\n", "row 1 (line 2), field 'aliases'"),
        ("ticker,name\nAAPL,Apple\naapl,Apple Computer\n", "row 2 (line 3), field 'ticker'"),
        (
            "ticker,name,aliases\nDAL,Delta Air Lines,Delta\nDLTA,Delta Inc.,\n",
            "row 2 (line 3), field 'name'",
        ),
        ("ticker,name,aliases\nGOOGL,Alphabet,$GOOG\nGOOG,Google,\n", "row 2 (line 3), field 'ticker'"),
        ("ticker,name,aliases\nF,Ford Motor,Ford\nFRD,Fjord Co,FORD\n", "row 2 (line 3), field 'aliases'"),
        ("ticker,company\nAAPL,Apple\n", "name"),
        ("ticker,name\n", "no companies"),
    ],
)
def test_bad_rows_name_file_row_and_field(tmp_path, body, where):
    path = tmp_path / "wl.csv"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_watchlist(path)
    assert str(err.value).startswith(str(path)) and where in str(err.value)


def test_cli_reports_a_bad_watch_list_in_one_line_with_exit_2(tmp_path):
    path = tmp_path / "wl.csv"
    path.write_text("ticker,name\nAAPL,Apple\n$$$,Oops\n", encoding="utf-8")
    result = run_aigc("finance", "entities", "relink", "--watchlist", str(path))
    assert result.code == 2 and "Traceback" not in result.stderr
    (line,) = result.error_lines
    assert f"{path}: row 2 (line 3), field 'ticker'" in line
    assert not (Path(os.environ["AIGC_DATA_DIR"]) / "aigc.db").exists()  # refused before the database


def test_cli_relinks_and_lists_entities_as_json(sample_template, tmp_path):
    from apps.finance_monitor.sample_data import SAMPLE_WATCHLIST
    from tests.apps.finance_monitor.sample_db import copy_db

    copy_db(sample_template, Path(os.environ["AIGC_DATA_DIR"]))
    before = json.loads(run_aigc("finance", "entities", "--json", "--days", "0").stdout)
    assert {e["entity"]: e["stories"] for e in before["entities"]}["NWDE"] == 13  # cashtags only
    first = run_aigc("finance", "entities", "relink", "--watchlist", str(SAMPLE_WATCHLIST))
    assert first.code == 0 and "linked 506 items" in first.stderr
    again = run_aigc("finance", "entities", "relink", "--watchlist", str(SAMPLE_WATCHLIST))
    assert "linked 0 items" in again.stderr
    after = json.loads(run_aigc("finance", "entities", "--json", "--days", "0").stdout)
    nwde = next(e for e in after["entities"] if e["entity"] == "NWDE")
    assert nwde["name"] == "Northwind Energy plc" and nwde["stories"] == 40 and after["start"] is None
    table = run_aigc("finance", "entities", "--limit", "3").stdout.splitlines()
    assert len(table) == 3 and table[0].split()[0] == after["entities"][0]["entity"]
