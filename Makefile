# `make demo` and `make test` work on a fresh clone: each creates .venv and installs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: install demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

demo: install
	$(BIN)/headwater validate --stack local
	$(BIN)/headwater run --stack local --root examples/orders --warehouse .headwater/demo.duckdb
	$(BIN)/python -c "import duckdb; c = duckdb.connect('.headwater/demo.duckdb', read_only=True); \
	print(c.sql('select * from orders order by order_id limit 5'))"

test: install
	$(BIN)/pytest -q -p no:cacheprovider

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .headwater dist build *.egg-info
