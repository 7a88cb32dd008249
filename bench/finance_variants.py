"""Variants of a finance benchmark side by side, seed by seed: validation choice and test score.

Reads the rows that ``bench.finance_phrasebank`` (or ``finance_tfns``) left in its result file, for
runs tagged ``<variant>-s<seed>`` (``--tag ls0.1-s42``), and writes the mean validation macro F1
(what chooses a variant) and the mean test weighted F1 (read after the choice) of each variant, as
JSON and a PNG::

    python -m bench.finance_variants --name phrasebank --tag label-smoothing \\
        --variants ens ls0.1 ls0.2 --seeds 42 7 1234

A variant missing a seed's row is reported with the seeds it has; one with no row at all is an error.
"""

from __future__ import annotations

import argparse
import json
from statistics import mean
from typing import Any

from bench.finance_common import RESULTS, rows_of
from core.atomic import write_bytes_atomic


def collect(rows: list[dict[str, Any]], variants: list[str], seeds: list[int]) -> dict[str, Any]:
    """Per variant: each seed's validation macro F1 and test weighted F1, and their means.

    Args:
        rows: Result rows of the benchmark (``runs`` and ``earlier_runs``).
        variants: Tag prefixes, in display order.
        seeds: Seeds, in display order.

    Raises:
        SystemExit: A variant has no row for any of ``seeds``.
    """
    by_tag = {r.get("tag"): r for r in rows}
    out: dict[str, Any] = {}
    for variant in variants:
        per_seed = {}
        for seed in seeds:
            row = by_tag.get(f"{variant}-s{seed}")
            if row is None:
                continue
            test = row.get("weighted_f1") if row.get("test_scored") else None
            per_seed[str(seed)] = {"val_macro_f1": row.get("val_macro_f1"), "test_weighted_f1": test}
        if not per_seed:
            raise SystemExit(f"no result row tagged {variant}-s<seed> for seeds {seeds}")
        entry: dict[str, Any] = {"seeds": per_seed}
        for key in ("val_macro_f1", "test_weighted_f1"):
            scores = _values(entry, key)
            entry[f"mean_{key}"] = round(mean(scores), 4) if scores else None
        out[variant] = entry
    return out


def plot(
    summary: dict[str, Any], seeds: list[int], title: str, path: str, target: float | None = None
) -> None:
    """Two panels (validation, test): one dot per seed, a bar for each variant's mean, the target line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    panels = (("val_macro_f1", "validation macro F1 (chooses)"), ("test_weighted_f1", "test weighted F1"))
    for ax, (key, label) in zip(axes, panels, strict=True):
        names = list(summary)
        means = [summary[v][f"mean_{key}"] or 0.0 for v in names]
        ax.bar(names, means, color="#4c72b0", alpha=0.6, label="mean")
        for i, v in enumerate(names):
            points = [summary[v]["seeds"].get(str(s), {}).get(key) for s in seeds]
            ys = [p for p in points if p is not None]
            ax.scatter([i] * len(ys), ys, color="black", s=14, zorder=3)
            ax.annotate(f"{means[i]:.3f}", (i, means[i]), ha="center", va="bottom", fontsize=8)
        low = min((p for v in names for p in _values(summary[v], key)), default=0.8)
        ax.set_ylim(low - 0.02, max(0.9, max(means) + 0.01))
        if target is not None and key == "test_weighted_f1":  # the target is a test score
            ax.axhline(target, color="#c44e52", linestyle="--", linewidth=1, label=f"target {target}")
            ax.legend(loc="upper right", fontsize=8)
        ax.set_title(label)
        ax.tick_params(axis="x", rotation=20)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _values(variant: dict[str, Any], key: str) -> list[float]:
    return [s[key] for s in variant["seeds"].values() if s[key] is not None]


def main() -> None:
    """Parse the command line, write ``finance_<name>_variants-<tag>.json`` and ``.png``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", required=True, help="benchmark: phrasebank, tfns")
    parser.add_argument("--tag", required=True, help="names the result files")
    parser.add_argument("--variants", nargs="+", required=True, help="tag prefixes, e.g. ens ls0.1")
    parser.add_argument("--seeds", nargs="+", type=int, required=True)
    args = parser.parse_args()
    source = RESULTS / f"finance_{args.name}.json"
    results = json.loads(source.read_text()) if source.is_file() else {}
    target = results.get("target", {}).get("value")
    summary = collect(rows_of(results), args.variants, args.seeds)
    out = RESULTS / f"finance_{args.name}_variants-{args.tag}"
    result = {"benchmark": args.name, "seeds": args.seeds, "target": target, "variants": summary}
    write_bytes_atomic(f"{out}.json", (json.dumps(result, indent=2) + "\n").encode())
    title = f"{args.name}: {args.tag} ({len(args.seeds)} seeds)"
    plot(summary, args.seeds, title, f"{out}.png", target)
    for variant, s in summary.items():
        print(f"{variant:>16}  val {s['mean_val_macro_f1']}  test {s['mean_test_weighted_f1']}")


if __name__ == "__main__":
    main()
