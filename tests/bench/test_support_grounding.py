"""The grounding benchmark's pure parts: fact check on cited sources, summaries, hand-label agreement."""

from __future__ import annotations

import csv

from bench.support_grounding import fact_problems, label_agreement, summarize


def row(route: str, unsupported: list[str], in_scope: bool = True, **extra) -> dict:
    base = {
        "question": f"q-{route}-{len(unsupported)}",
        "in_scope": in_scope,
        "route": route,
        "latency_ms": 10.0,
        "cpu_ms": 5.0,
        "cites_gold": True,
        "unsupported": unsupported,
        "fabricated_contact": [u for u in unsupported if u.split()[0] in {"url", "email", "phone"}],
        "sentences": 2,
        "sentences_supported": 2 - len(unsupported),
    }
    return base | extra


def test_fact_problems_ignore_citations_and_read_every_source():
    answer = "Returns are free within 30 days [ret-01]. Call 0800 555 0199 [ret-01]."
    problems = fact_problems(answer, {"ret-01": "Returns are free.", "x": "You have 30 days."})
    assert "number 30" not in problems and "phone 08005550199" in problems
    assert not any("ret-01" in p for p in problems)


def test_summarize_counts_answered_unsupported_and_contacts_per_route():
    rows = [
        row("extract", []),
        row("extract", ["number 4"]),
        row("faq", []),
        row("handoff", [], cites_gold=False),
        row("handoff", [], in_scope=False),
        row("extract", ["url x.example"], in_scope=False),
    ]
    summary = summarize(rows)
    inside = summary["in_scope"]
    assert inside["questions"] == 4 and inside["answered"] == 3 and inside["answered_share"] == 0.75
    assert inside["unsupported_fact_share"] == round(1 / 3, 4)
    assert inside["sentences_supported_share"] == round(5 / 6, 4)
    assert summary["by_route"]["extract"]["answered"] == 2
    assert summary["out_of_scope_answered"] == 1 and summary["route_counts"]["handoff"] == 2


def test_label_agreement_and_threshold(tmp_path):
    def unverified(answer, unsupported, scores):
        checks = [{"sentence": f"s{i}", "score": s, "reasons": []} for i, s in enumerate(scores)]
        return {"answer": answer, "unsupported": unsupported, "sentence_checks": checks}

    runs = {
        "sample": [
            {"question": "a", "unverified": unverified("A", ["number 4"], [0.3, 0.9])},
            {"question": "b", "unverified": unverified("B", [], [0.8])},
            {"question": "c", "unverified": unverified("C", [], [0.2])},
        ]
    }
    path = tmp_path / "labels.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["dataset", "question", "answer", "sentence", "supported", "unsupported_fact", "note"]
        )
        writer.writerow(["sample", "a", "A", "s0", "no", "yes", ""])
        writer.writerow(["sample", "a", "A", "s1", "yes", "no", ""])
        writer.writerow(["sample", "b", "B", "s0", "yes", "no", ""])
        writer.writerow(["sample", "c", "C", "s0", "no", "yes", "a name the source lacks"])
        writer.writerow(["sample", "zzz", "gone", "s0", "no", "yes", "answer no longer produced"])
    result = label_agreement(runs, path)
    assert result["labelled_answers"] == 4 and result["matched_answers"] == 3
    assert result["agreement"] == round(2 / 3, 4)
    assert result["auto_precision"] == 1.0 and result["auto_recall"] == 0.5
    assert 0.3 < result["meaning_threshold"] <= 0.8
    assert label_agreement(runs, tmp_path / "missing.csv") is None
