"""`python -m bench.perf_generation`: the same as `aigc bench generation`."""

import sys

from core.bench.cli import bench

if __name__ == "__main__":
    bench("generation", as_json="--json" in sys.argv, quick="--quick" in sys.argv)
