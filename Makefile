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

.PHONY: install index serve test test-slow test-all clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: 2.13.0 is the CPU build on this disk (an open range pulls CUDA).
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Incremental: a no-op when data/ has not changed since the last build.
index: install
	$(BIN)/newsqa index data --index $(INDEX)

serve: index
	$(BIN)/newsqa serve --index $(INDEX) --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: install
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

test-all: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(INDEX) .cache .pytest_cache artifacts
