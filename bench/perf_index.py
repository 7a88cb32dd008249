"""`python -m bench.perf_index`: the same as `aigc bench index`."""

import sys

from core.bench.cli import bench

if __name__ == "__main__":
    bench("index", as_json="--json" in sys.argv, quick="--quick" in sys.argv)
