"""`python -m bench.perf_finetune`: the same as `aigc bench finetune`."""

import sys

from core.bench.cli import bench

if __name__ == "__main__":
    bench("finetune", as_json="--json" in sys.argv, quick="--quick" in sys.argv)
