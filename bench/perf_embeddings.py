"""`python -m bench.perf_embeddings`: the same as `aigc bench embeddings`."""

import sys

from core.bench.cli import bench

if __name__ == "__main__":
    bench("embeddings", as_json="--json" in sys.argv, quick="--quick" in sys.argv)
