"""Write the finance monitor's synthetic sample data (deterministic; run from the repository root).

    python -m apps.finance_monitor.sample_data.make_sample

Every headline is written here from templates about fictional companies; no real news text is
used. Outputs, beside this file:

* ``news_stream.csv`` (ISO timestamps in UTC), ``news_stream.jsonl`` (``+01:00`` offsets, field
  aliases ``published``/``headline``/``summary``) and ``news_feed.xml`` (RSS 2.0, RFC 822 dates
  in ``-0500``): one news stream, Mon 2 - Fri 6 March 2026, split by source;
* ``news_truth.csv``: the topic and sentiment each headline was written with (for checks);
* ``train_sentiment.csv`` and ``train_topic.csv``: small labelled sets for the demo models.

The stream holds syndicated copies (the same story from another outlet, lightly re-worded) and a
negative surge in ``Energy | Oil`` on Thursday 5 March 13:00-16:00 UTC (a refinery blast at
Northwind Energy), which ``alert_rules.yaml`` turns into alerts.
"""

from __future__ import annotations

import csv
import json
import random
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

from apps.finance_monitor.dedup import NearDuplicateIndex, jaccard, shingles
from apps.finance_monitor.sources import stable_item_id

OUT = Path(__file__).resolve().parent
SEED = 20260302
START = datetime(2026, 3, 2, tzinfo=UTC)
DAYS = 5
ITEMS_PER_DAY = 70
SURGE_START = datetime(2026, 3, 5, 13, tzinfo=UTC)
SURGE_STORIES = 27  # over three hours
SENTIMENT_WEIGHTS = {"negative": 0.25, "neutral": 0.45, "positive": 0.30}
SOURCES = ["Wirewatch", "Harbor Street Journal", "Tickertape Daily", "Market Ledger", "Quay Newswire"]
JSONL_SOURCE, RSS_SOURCE = "Market Ledger", "Quay Newswire"

COMPANIES = {
    "Energy | Oil": [
        ("Northwind Energy", "NWDE"),
        ("Brightwater Petroleum", "BRWP"),
        ("Sablecrest Gas", "SBCG"),
    ],
    "Earnings": [("Qortex Systems", "QRTX"), ("Altona Retail", "ALTN"), ("Veridia Pharma", "VRDA")],
    "Fed | Central Banks": [("the Fed", "")],
    "M&A | Investments": [
        ("Larkspur Bank", "LKSB"),
        ("Cobalt Ridge Mining", "CBRM"),
        ("Meridian Foods", "MRDN"),
    ],
    "Company | Product News": [
        ("Helio Motors", "HLMO"),
        ("Qortex Systems", "QRTX"),
        ("Pinefield Devices", "PNFD"),
    ],
    "Legal | Regulation": [("Altona Retail", "ALTN"), ("Larkspur Bank", "LKSB"), ("Veridia Pharma", "VRDA")],
}
# Other names for the training files, so the demo models learn the patterns, not the stream's names.
TRAIN_COMPANIES = [
    ("Osprey Logistics", "OSPL"), ("Tamarind Foods", "TMRF"), ("Glenmoor Steel", "GLMS"),
    ("Corvid Software", "CRVS"), ("Redwater Utilities", "RDWU"), ("Halcyon Air", "HLCA"),
    ("Ironbark Oil", "IRBO"), ("Solenne Bio", "SLNB"), ("Westgate Insurance", "WGTI"),
]  # fmt: skip
TARGETS = ["Dunmore Foods", "Kestrel Analytics", "Brookvale Minerals", "Ashgrove Logistics", "Orrin Payments"]
CITIES = ["Rotterdam", "Houston", "Calgary", "Aberdeen", "Singapore", "Lyon", "Denver", "Gdansk", "Perth"]
PRODUCTS = ["EV sedan", "tablet", "smart meter", "battery pack", "delivery van", "home router"]
BANKS = ["the Fed", "the ECB", "the Bank of England", "the Bank of Japan", "the Swiss National Bank"]
DAYS_OF_WEEK = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
MONTHS = ["June", "July", "September", "October", "December", "next spring"]
QUARTERS = ["first-quarter", "second-quarter", "third-quarter", "fourth-quarter"]

TEMPLATES: dict[str, dict[str, list[str]]] = {
    "Energy | Oil": {
        "negative": [
            "{co} shuts {city} refinery after fire, output cut by {pct}%",
            "{tk} slides as {co} warns of lower crude output",
            "Pipeline leak forces {co} to halt shipments from {city} terminal",
            "Oil drops {pct}% as inventories swell more than expected",
            "{co} cuts dividend as refining margins collapse",
            "Crude tumbles on signs of weaker demand from refiners",
        ],
        "neutral": [
            "{co} to present at energy conference in {city} next week",
            "Oil prices little changed ahead of weekly inventory data",
            "{co} schedules maintenance at {city} plant for the second quarter",
            "Producers meet in {city}; no change in output quotas expected",
            "{co} publishes annual reserves report",
            "{co} to publish {q} production figures on {day}",
            "{co} says {city} plant running at normal rates",
            "Oil traders await {city} inventory figures due {day}",
            "{co} confirms {q} drilling schedule for its {city} basin",
            "Brent steady near ${price} a barrel in {city} trading",
        ],
        "positive": [
            "{co} raises output target after new {city} field comes online",
            "{tk} gains {pct}% as {co} reports record refining throughput",
            "Brent rises {pct}% on stronger than expected demand",
            "{co} signs long-term gas supply deal with {city} utility",
            "{co} lifts production forecast on strong well results",
        ],
    },
    "Earnings": {
        "negative": [
            "{co} misses {q} estimates and cuts full-year outlook",
            "{tk} falls after {co} posts surprise {q} loss",
            "{co} revenue shrinks {pct}% as orders dry up",
            "{co} warns {q} profit will fall short of forecasts",
            "{co} margins squeezed as costs jump {pct}%",
            "{co} {q} sales miss forecasts by {pct}%",
            "{co} books ${amt} charge, swings to {q} loss",
            "{tk} {co} trims {q} margin forecast on weak {city} demand",
        ],
        "neutral": [
            "{co} to report {q} results on Thursday",
            "{co} {q} earnings in line with analyst expectations",
            "What to watch in the {q} report from {co}",
            "{co} confirms date for annual shareholder meeting",
            "{tk} {co} keeps full-year guidance unchanged",
            "{co} to release {q} figures before the bell on {day}",
            "{co} {q} revenue of ${amt} matches consensus",
            "Analysts expect flat {q} sales at {co} on {day}",
        ],
        "positive": [
            "{co} beats {q} estimates, lifts full-year guidance",
            "{tk} jumps {pct}% after {co} posts record {q} revenue",
            "{co} profit rises {pct}% on strong demand",
            "{co} raises dividend after a strong {q}",
            "{co} margins widen as cost cuts pay off",
        ],
    },
    "Fed | Central Banks": {
        "negative": [
            "{bank} signals more hikes as inflation stays sticky",
            "{bank} warns of rising credit risks at regional lenders",
            "{bank} policymakers say rate cuts are off the table until {month}",
            "Bond yields jump {bp} basis points as {bank} points to tighter policy",
            "{bank} official warns the inflation fight is far from over",
            "Yields surge {bp} basis points after hawkish {bank} remarks in {city}",
            "{bank} minutes flag risk of rates staying high beyond {month}",
        ],
        "neutral": [
            "{bank} holds rates steady, as widely expected",
            "{bank} chief to testify before lawmakers in {month}",
            "{bank} publishes quarterly financial stability report",
            "{bank} policymakers split on timing of next move, minutes show",
            "{bank} officials due to speak at {city} conference",
            "{bank} leaves policy unchanged; next meeting in {month}",
            "Markets price {bp} basis points of {bank} moves by {month}",
        ],
        "positive": [
            "{bank} signals rate cuts could start in {month}",
            "Stocks rally as {bank} hints at easing",
            "{bank} sees inflation back at target by {month}",
            "{bank} official says a soft landing is within reach",
            "Bond yields ease {bp} basis points as {bank} tone softens",
            "{bank} cuts rates by {bp} basis points, lifting stocks",
            "Shares climb after {bank} comments in {city} calm markets",
        ],
    },
    "M&A | Investments": {
        "negative": [
            "{co} scraps planned takeover of {target} after regulator pushback",
            "{co} writes down ${amt} on failed acquisition",
            "Shareholders reject {co} bid for {target}",
            "{co} deal talks with {target} collapse",
            "{tk} drops as {co} overpays for {target}, analysts say",
        ],
        "neutral": [
            "{co} in early talks to buy {target}, sources say",
            "{co} completes previously announced purchase of {target}",
            "{co} hires advisers to review strategic options",
            "{target} board to consider offer from {co}",
            "{co} files merger documents for {target} deal",
        ],
        "positive": [
            "{co} agrees to buy {target} for ${amt}, shares rise",
            "{tk} jumps on report of buyout interest in {co}",
            "{co} wins approval for {target} merger",
            "{co} invests ${amt} to expand {city} operations",
            "{co} sells non-core unit at a premium to {target}",
        ],
    },
    "Company | Product News": {
        "negative": [
            "{co} recalls {n} vehicles over brake fault",
            "{co} delays launch of flagship {prod} to next year",
            "Outage hits {co} customers for a second day",
            "{co} to cut {n} jobs as sales slow",
            "{tk} falls as {co} {prod} draws safety complaints",
        ],
        "neutral": [
            "{co} unveils updated {prod} lineup at {city} event",
            "{co} opens new office in {city}",
            "{co} to hold investor day in {city}",
            "{co} rebrands its {prod} division",
            "{tk} {co} moves {prod} assembly to {city}",
        ],
        "positive": [
            "{co} {prod} orders top expectations",
            "{co} wins ${amt} contract from {city} transit authority",
            "{tk} rises as {co} launches {prod} ahead of schedule",
            "{co} to hire {n} engineers as demand grows",
            "{co} {prod} wins industry award",
        ],
    },
    "Legal | Regulation": {
        "negative": [
            "{co} fined ${amt} over misleading sales practices",
            "Regulator opens probe into {co} accounting",
            "{co} faces class action over data breach",
            "Court rules against {co} in patent dispute",
            "{tk} sinks as regulator bars {co} from new business in {city}",
        ],
        "neutral": [
            "{co} files annual report with regulator",
            "Regulator publishes draft rules on climate disclosures",
            "{co} court hearing postponed to next month",
            "Lawmakers debate new rules for payment apps",
            "{co} responds to regulator questions on {prod} pricing",
            "{co} to appear before {city} court on {day}",
            "Regulator extends comment period on {prod} rules to {month}",
            "{co} says it is cooperating with {city} regulators",
        ],
        "positive": [
            "{co} wins dismissal of shareholder lawsuit",
            "Regulator clears {co} of wrongdoing",
            "{co} settles patent dispute on favourable terms",
            "{tk} climbs after court sides with {co}",
            "{co} gets regulatory approval to enter {city} market",
            "{co} wins appeal, overturning ${amt} fine",
            "{tk} rises after regulator drops {city} investigation into {co}",
            "{co} cleared by {city} court in {prod} pricing case",
        ],
    },
}

SURGE_TEMPLATES = [
    "Explosion at Northwind Energy {city} refinery; output halted",
    "$NWDE Northwind Energy evacuates {city} plant after blast",
    "$NWDE plunges {pct}% after refinery explosion",
    "Northwind Energy ($NWDE) says refinery outage could last weeks",
    "Analysts cut Northwind Energy price targets after refinery blast",
    "Fuel prices spike as refinery outage deepens supply worries",
    "$BRWP Brightwater Petroleum slides on fears of wider refinery outages",
    "Safety regulator to investigate Northwind refinery blast",
    "$NWDE suspends guidance after {city} explosion",
    "Insurers brace for losses from Northwind refinery fire",
    "Energy stocks slump as refinery blast rattles investors",
    "Northwind Energy $NWDE bonds fall as outage costs mount",
    "$NWDE trading halted twice as losses deepen",
    "Northwind blast knocks out a fifth of regional fuel supply",
    "Traders dump refiners after Northwind accident",
    "Crude spreads whipsaw as Northwind outage hits {city} hub",
    "$NWDE warns of major hit to quarterly profit",
    "Ratings agency puts $NWDE on watch for downgrade",
    "Fire still burning at Northwind {city} refinery, officials say",
    "$NWDE shares head for worst day in a decade",
    "$SBCG Sablecrest Gas falls in sympathy with Northwind",
    "Unions demand answers after Northwind refinery explosion",
    "Northwind Energy cuts shipments to customers after blast",
    "Energy sector sell-off deepens on refinery outage",
    "Lawmakers call for hearing on Northwind refinery safety record",
    "Northwind Energy ($NWDE) shelves buyback to fund refinery repairs",
    "Fuel distributors scramble as Northwind output stops",
]

BODIES = {
    "negative": "The reaction in early trading was negative.",
    "neutral": "Further details are expected later in the week.",
    "positive": "The reaction in early trading was positive.",
}


def _fill(template: str, rng: random.Random, company: tuple[str, str]) -> str:
    name, ticker = company
    text = template.format(
        co=name,
        tk=f"${ticker}" if ticker else name,
        city=rng.choice(CITIES),
        pct=rng.randint(2, 14),
        amt=f"{rng.randint(2, 95) / 10:.1f} billion"
        if rng.random() < 0.5
        else f"{rng.randint(50, 900)} million",
        q=rng.choice(QUARTERS),
        n=f"{rng.randint(2, 60) * 500:,}",
        prod=rng.choice(PRODUCTS),
        target=rng.choice(TARGETS),
        bank=rng.choice(BANKS),
        month=rng.choice(MONTHS),
        bp=rng.randint(5, 40),
        day=rng.choice(DAYS_OF_WEEK),
        price=rng.randint(60, 95),
    )
    return text[0].upper() + text[1:]


def _syndicate(title: str, source: str, rng: random.Random) -> str:
    style = rng.randrange(4)
    if style == 0:
        return f"UPDATE 1-{title}"
    if style == 1:
        return f"{title} - {source}"
    if style == 2:
        return f"BREAKING: {title}"
    return f"{title} (updated)"


def _unique_headline(index: NearDuplicateIndex, make, when: datetime, story_id: str) -> str:  # noqa: ANN001
    for _ in range(50):
        title = make()
        if index.find(title, when) is None:
            index.add(story_id, title, when)
            return title
    raise RuntimeError(f"could not write a headline unlike the others for {story_id}")


def build_stream(rng: random.Random) -> list[dict]:
    """The stream's records (id, timestamp, source, title, body, topic, sentiment), oldest first."""
    index = NearDuplicateIndex()
    stories = []
    topics = list(TEMPLATES)
    for day in range(DAYS):
        for i in range(ITEMS_PER_DAY):
            when = START + timedelta(days=day, hours=6, seconds=rng.randrange(15 * 3600))
            topic = rng.choice(topics)
            sentiment = rng.choices(list(SENTIMENT_WEIGHTS), weights=list(SENTIMENT_WEIGHTS.values()))[0]

            def make(topic: str = topic, sentiment: str = sentiment) -> str:
                return _fill(rng.choice(TEMPLATES[topic][sentiment]), rng, rng.choice(COMPANIES[topic]))

            title = _unique_headline(index, make, when, f"d{day}-{i}")
            stories.append({"when": when, "topic": topic, "sentiment": sentiment, "title": title})
    surge = list(SURGE_TEMPLATES)
    rng.shuffle(surge)
    for i, template in enumerate(surge[:SURGE_STORIES]):
        when = SURGE_START + timedelta(seconds=int(i * 3 * 3600 / SURGE_STORIES) + rng.randrange(300))
        title = _unique_headline(index, lambda t=template: _fill(t, rng, ("", "")), when, f"surge-{i}")
        stories.append({"when": when, "topic": "Energy | Oil", "sentiment": "negative", "title": title})

    records = []
    for story in stories:
        source = rng.choice(SOURCES)
        body = BODIES[story["sentiment"]] if rng.random() < 0.3 else None
        story.update(source=source, body=body, copy_of=None)
        records.append(story)
        if rng.random() < 0.12 or (story["topic"] == "Energy | Oil" and story["when"] >= SURGE_START):
            for other in rng.sample([s for s in SOURCES if s != source], k=rng.randint(1, 2)):
                title = _syndicate(story["title"], other, rng)
                assert jaccard(shingles(title), shingles(story["title"])) >= 0.6, title
                delay = timedelta(minutes=rng.randint(5, 120))
                records.append({**story, "when": story["when"] + delay, "source": other, "title": title,
                                "body": None, "copy_of": story})  # fmt: skip
    records.sort(key=lambda r: (r["when"], r["source"], r["title"]))
    for n, rec in enumerate(records, start=1):
        if rec["source"] == JSONL_SOURCE:
            rec["id"] = f"ml-{n:04d}"
        elif rec["source"] == RSS_SOURCE:
            rec["id"] = f"quay-{n:04d}"
        else:
            rec["id"] = stable_item_id(rec["source"], rec["title"], rec["when"])
    return records


def write_stream(records: list[dict], out: Path = OUT) -> None:
    """Write the stream files and the truth file into ``out``."""
    csv_rows = [r for r in records if r["source"] not in (JSONL_SOURCE, RSS_SOURCE)]
    with (out / "news_stream.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["timestamp", "source", "title", "body"])
        for r in csv_rows:
            writer.writerow(
                [r["when"].strftime("%Y-%m-%dT%H:%M:%SZ"), r["source"], r["title"], r["body"] or ""]
            )
    cet = timezone(timedelta(hours=1))
    with (out / "news_stream.jsonl").open("w", encoding="utf-8") as fh:
        for r in records:
            if r["source"] == JSONL_SOURCE:
                published = r["when"].astimezone(cet).isoformat()
                rec = {"id": r["id"], "published": published, "source": r["source"],
                       "headline": r["title"], "summary": r["body"]}  # fmt: skip
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    _write_rss([r for r in records if r["source"] == RSS_SOURCE], out / "news_feed.xml")
    with (out / "news_truth.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["id", "topic", "sentiment", "story_id"])
        for r in records:
            writer.writerow([r["id"], r["topic"], r["sentiment"], (r["copy_of"] or r)["id"]])


def _write_rss(records: list[dict], path: Path) -> None:
    est = timezone(timedelta(hours=-5))
    rss = ET.Element("rss", version="2.0")
    channel = ET.SubElement(rss, "channel")
    ET.SubElement(channel, "title").text = RSS_SOURCE
    ET.SubElement(channel, "link").text = "https://quay-newswire.example/markets"
    ET.SubElement(channel, "description").text = "Synthetic market headlines for the aigc-suite demo."
    for r in records:
        item = ET.SubElement(channel, "item")
        ET.SubElement(item, "title").text = r["title"]
        ET.SubElement(item, "guid", isPermaLink="false").text = r["id"]
        ET.SubElement(item, "link").text = f"https://quay-newswire.example/markets/{r['id']}"
        ET.SubElement(item, "pubDate").text = format_datetime(r["when"].astimezone(est))
        if r["body"]:
            ET.SubElement(item, "description").text = f"<p>{r['body']}</p>"
    ET.indent(rss)
    ET.ElementTree(rss).write(path, encoding="utf-8", xml_declaration=True)


def write_training(rng: random.Random, out: Path = OUT, per_class: int = 120, per_topic: int = 50) -> None:
    """Write ``train_sentiment.csv`` (text,label) and ``train_topic.csv`` (text,label)."""
    topics = list(TEMPLATES)

    def sentence(topic: str, sentiment: str) -> str:
        company = rng.choice(TRAIN_COMPANIES) if topic != "Fed | Central Banks" else ("the Fed", "")
        return _fill(rng.choice(TEMPLATES[topic][sentiment]), rng, company)

    def draw(n: int, make) -> list[tuple[str, str]]:  # noqa: ANN001
        rows: dict[str, str] = {}
        for _ in range(50 * n):
            text, label = make()
            rows.setdefault(text, label)
            if len(rows) == n:
                return list(rows.items())
        raise RuntimeError(f"templates too few for {n} distinct sentences")

    sentiment_rows = []
    for label in SENTIMENT_WEIGHTS:
        sentiment_rows += draw(per_class, lambda label=label: (sentence(rng.choice(topics), label), label))
    topic_rows = []
    for topic in topics:
        topic_rows += draw(
            per_topic, lambda topic=topic: (sentence(topic, rng.choice(list(SENTIMENT_WEIGHTS))), topic)
        )
    for name, rows in (("train_sentiment.csv", sentiment_rows), ("train_topic.csv", topic_rows)):
        rng.shuffle(rows)
        with (out / name).open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["text", "label"])
            writer.writerows(rows)


def main(out: Path = OUT) -> None:
    """Write every sample file into ``out`` (default: beside this script)."""
    out.mkdir(parents=True, exist_ok=True)
    write_stream(build_stream(random.Random(SEED)), out)
    write_training(random.Random(SEED + 1), out)


if __name__ == "__main__":
    main()
