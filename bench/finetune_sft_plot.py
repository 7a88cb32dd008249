"""Plot the SFT training-speed runs of `aigc bench finetune --task sft` (seconds per epoch per contestant).

    python -m bench.finetune_sft_plot NAME=RESULT.json [NAME=RESULT.json ...] --out FILE.png

Each RESULT.json is a `finetune.json` written by the benchmark (its `"sft"` section is read). Left: wall
seconds per epoch, each rep a dot, the median a bar; right: process CPU seconds where the run has them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

CONTESTANTS = {"project": "project loop", "trainer": "Trainer fp32", "trainer_bf16": "Trainer(bf16=True)"}
COLOURS = {"project": "#4c78a8", "trainer": "#bab0ac", "trainer_bf16": "#f58518"}


def load_runs(specs: list[str]) -> dict[str, dict[str, Any]]:
    """``{name: sft section}`` from ``NAME=path`` arguments."""
    runs = {}
    for spec in specs:
        name, _, path = spec.partition("=")
        data = json.loads(Path(path).read_text())
        runs[name] = data.get("sft", data)
    return runs


def plot(runs: dict[str, dict[str, Any]], path: Path) -> None:
    """Bars of the median seconds per epoch (dots: each rep), wall time and, where recorded, CPU time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from core.bench.harness import save_figure

    panels = [("seconds_all", "wall s per epoch")]
    if any("cpu_seconds_all" in run for run in runs.values()):
        panels.append(("cpu_seconds_all", "process CPU s per epoch"))
    fig, axes = plt.subplots(1, len(panels), figsize=(8 * len(panels), 4.2), squeeze=False)
    x = np.arange(len(runs))
    width = 0.8 / len(CONTESTANTS)
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        for j, (name, label) in enumerate(CONTESTANTS.items()):
            offset = (j - 1) * width
            values = [run.get(key, {}).get(name) or [] for run in runs.values()]
            medians = [float(np.median(v)) if v else 0.0 for v in values]
            bars = ax.bar(x + offset, medians, width, label=label, color=COLOURS[name])
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
            for i, reps in enumerate(values):
                ax.scatter([x[i] + offset] * len(reps), reps, s=8, color="black", zorder=3)
        ax.set_xticks(x, [_label(name, run, key) for name, run in runs.items()], fontsize=7)
        ax.set_title(f"LoRA SFT, SmolLM2-135M, 64 pairs: {title}", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def _label(name: str, run: dict[str, Any], key: str) -> str:
    seconds = run.get(key) or {}
    if not seconds.get("project") or not seconds.get("trainer_bf16"):
        return name
    ratio = float(np.median(seconds["trainer_bf16"])) / float(np.median(seconds["project"]))
    return f"{name}\n{ratio:.2f}x bf16 Trainer"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", help="NAME=path/to/finetune.json")
    parser.add_argument("--out", type=Path, default=Path("bench/results/finetune_sft.png"))
    args = parser.parse_args(argv)
    plot(load_runs(args.runs), args.out)


if __name__ == "__main__":
    main()
