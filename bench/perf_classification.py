"""`python -m bench.perf_classification`: the same as `aigc bench classification`."""

import sys

from core.bench.cli import bench

if __name__ == "__main__":
    bench("classification", as_json="--json" in sys.argv, quick="--quick" in sys.argv)
