# newsqa — `make serve` indexes data/ and serves it; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
INDEX  ?= index
HOST   ?= 127.0.0.1
PORT   ?= 8000

# Nothing is downloaded at run time: the model and tokenizer files ship in packages.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export NEWSQA_CACHE_DIR ?= $(CURDIR)/.cache

.PHONY: install chromium index serve test test-slow test-all typecheck bench clean follow-demo

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: 2.13.0 is the CPU build on this disk (an open range pulls CUDA).
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The browser tests drive Debian's headless Chromium (no browser download at run time).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || { \
	  echo "installing Debian chromium and chromium-driver for the browser tests"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null; }

# Incremental: a no-op when data/ has not changed since the last build.
index: install
	$(BIN)/newsqa index data --index $(INDEX)

serve: index
	$(BIN)/newsqa serve --index $(INDEX) --host $(HOST) --port $(PORT)

# Serves a made-up news site on loopback and follows it once into demo-index/ (no internet needed).
follow-demo: install
	$(BIN)/python -m service.feeds_demo --index demo-index

# The storage and query layers are type-checked (files and settings: [tool.mypy] in pyproject.toml).
typecheck: install
	$(BIN)/python -m mypy

test: install chromium
	$(BIN)/python -m pytest -m "not slow and not bench" $(PYTEST_ARGS)

test-slow: install chromium
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

test-all: install chromium
	$(BIN)/python -m pytest -m "not bench" $(PYTEST_ARGS)

# The full benchmarks: tens of minutes to hours on 2 cores, so not in CI (their --short runs are).
# Run them on a quiet machine (`uptime` load < 0.5) and copy the figures into docs/performance.md.
SCIFACT ?= ../shared/datasets/beir-scifact
bench: install
	uptime
	$(BIN)/python -m pytest -m bench $(PYTEST_ARGS)
	$(BIN)/newsqa eval --beir $(SCIFACT)
	$(BIN)/python bench/encoders.py
	$(BIN)/python bench/index_throughput.py --limit 40 --rounds 3
	$(BIN)/python bench/query_latency.py
	$(BIN)/python bench/load_test.py
	$(BIN)/python bench/million.py --json .cache/million/report.json

clean:
	rm -rf $(INDEX) demo-index demo-index-sources.txt .cache .pytest_cache .mypy_cache artifacts
