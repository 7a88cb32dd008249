"""Merge the finance benchmark results into ``bench/results/finance.json`` and ``finance.png``.

Run after ``bench.finance_phrasebank``, ``bench.finance_tfns`` and ``bench.finance_topic``:
``.venv/bin/python -m bench.finance_report``. Prints the Markdown table for docs/benchmarks/finance.md.
"""

from __future__ import annotations

import json

from bench.finance_common import RESULTS

NAMES = {"phrasebank": "Financial PhraseBank 50Agree", "tfns": "TFNS sentiment", "topic": "TFN topic (20)"}


def main() -> None:
    """Collect ``finance_<name>.json``, write the merged JSON and the plot, print the table."""
    merged = {}
    for name in NAMES:
        path = RESULTS / f"finance_{name}.json"
        if path.is_file():
            merged[name] = json.loads(path.read_text())
    (RESULTS / "finance.json").write_text(json.dumps(merged, indent=2) + "\n")
    rows = [
        "| benchmark | model | config | train rows | epochs | metric | value | target | train s | items/s |"
    ]
    rows.append("|---|---|---|---:|---:|---|---:|---:|---:|---:|")
    labels, values, targets = [], [], []
    for name, result in merged.items():
        metric, target = result["target"]["metric"], result["target"]["value"]
        for run in [*result.get("earlier_runs", []), *result["runs"]]:
            if metric not in run:  # a --no-test run: validation only (see its history)
                continue
            model = run.get("model", "minilm-l6")
            config = "-".join(filter(None, (run["config"], run.get("tag"))))
            rows.append(
                f"| {NAMES[name]} | {model} | {config} | {run['train_rows']} | {run['epochs_run']} "
                f"| {metric} "
                f"| {run[metric]:.3f} | {target:.2f} | {run['train_wall_s'] or 0:.0f} "
                f"| {run['score_items_per_s']:.1f} |"
            )
            labels.append(f"{NAMES[name]}\n{model} {config}, {run['epochs_run']} ep")
            values.append(run[metric])
            targets.append(target)
    print("\n".join(rows))
    if values:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from core.bench.harness import save_figure

        fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(values), 3.6))
        xs = range(len(values))
        ax.bar(xs, values, color="#4c78a8", label="measured")
        ax.scatter(xs, targets, color="#e45756", marker="_", s=900, linewidths=3, label="target", zorder=3)
        ax.set_xticks(list(xs), labels, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("weighted F1 / accuracy")
        ax.legend(loc="lower right", fontsize=8)
        ax.set_title("Finance classifiers vs targets")
        fig.tight_layout()
        save_figure(fig, RESULTS / "finance.png", dpi=120)


if __name__ == "__main__":
    main()
