# The two commands of the README: `make demo` and `make test` set everything up themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck unit docs bench load fuzz clean

# pip >= 25.1 installs the development-only dependency groups of pyproject.toml (`--group`).
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade 'pip>=25.1'

# One stamp per use, so `make demo` does not install the test tools: the demo's client, and
# SQLAlchemy for the example API and its transaction hook.
$(VENV)/.demo: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[client,sqlalchemy]'
	touch $@

$(VENV)/.dev: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[client,httpx,sqlalchemy,sqlalchemy-asyncio,flask-sqlalchemy,django]' --group dev --group docs
	touch $@

$(VENV)/.docs: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e . --group docs
	touch $@

$(VENV)/.bench: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[client]' --group bench
	touch $@

$(VENV)/.load: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[client]' --group load
	touch $@

$(VENV)/.fuzz: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e . --group fuzz
	touch $@

demo: $(VENV)/.demo
	$(BIN)/python examples/demo.py

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev
	$(BIN)/mypy

unit: $(VENV)/.dev
	$(BIN)/pytest -q

test: lint typecheck unit

# The documentation site (mkdocs.yml, docs/) into site/, warnings as errors: a broken link
# between pages, a page missing from the navigation, a docstring the reference cannot read.
# `make test` builds it too (tests/test_docs.py).
docs: $(VENV)/.docs
	$(BIN)/mkdocs build --strict

# Concurrent batches against gunicorn (sync, then gthread workers) on 127.0.0.1, >= 60 s each;
# writes bench/results/load.md.
load: $(VENV)/.load
	$(BIN)/python bench/load.py

# Latency proxy, end to end at 0 and 50 ms, server-side cost (multipart and JSON) and memory,
# parallel parts, the async httpx client, ASGI (bench/asgi_cost.py), the alpha release;
# writes docs/benchmarks.md and docs/benchmarks.png (about 14 minutes; see bench/README.md).
bench: $(VENV)/.bench
	$(BIN)/python -m bench

# Coverage-guided fuzzing of the wire core with atheris for FUZZ_SECONDS (FUZZ_TARGET: all,
# reader, message, roundtrip, decoder or json; FUZZ_KEEP_GOING=1: go past findings, keeping
# each distinct one); new inputs and crashes go to fuzz/.work/ (fuzz/README.md).
FUZZ_SECONDS ?= 60
FUZZ_TARGET ?= all
FUZZ_KEEP_GOING ?=
fuzz: $(VENV)/.fuzz
	mkdir -p fuzz/.work/corpus
	$(BIN)/python -m fuzz.fuzz_batch --target $(FUZZ_TARGET) $(if $(FUZZ_KEEP_GOING),--keep-going) \
		-max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-dict=fuzz/batch.dict -artifact_prefix=fuzz/.work/ fuzz/.work/corpus fuzz/corpus/seeds

clean:
	rm -rf $(VENV) build site *.egg-info src/*.egg-info .mypy_cache .pytest_cache .ruff_cache
