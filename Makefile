# `make demo` and `make test` work on a fresh clone: each creates .venv and installs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEV    := $(VENV)/.installed-dev

.PHONY: install install-dev demo test lint bench clean reliability-doc

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# headwater and pyarrow (the example's Parquet object): what `headwater run` on the example needs
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[parquet]'
	touch $@

# the dev extra (tests, emulators, linters) includes everything `install` brings
$(DEV): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	# pulumi-policy pins protobuf 5 while the google-cloud SDKs need protobuf 6; the pack's
	# tests only import it, which works with protobuf 6, so it comes without its pins
	$(BIN)/pip install --quiet --no-deps 'pulumi-policy>=1.21,<2'
	touch $@ $(STAMP)

install: $(STAMP)

install-dev: $(DEV)

# The signups pipeline uses the example plugin (country_name) and a secret (email-key).
# A second `make demo` writes nothing new: the ledger in the DuckDB file skips done objects.
demo: install
	$(BIN)/pip install --quiet ./examples/plugins/headwater-geo
	$(BIN)/headwater validate --stack local
	HEADWATER_SECRET_EMAIL_KEY=demo-key $(BIN)/headwater run --stack local --no-progress \
		--root examples/orders --warehouse .headwater/demo.duckdb
	$(BIN)/python -c "import duckdb; c = duckdb.connect('.headwater/demo.duckdb', read_only=True); \
	print(c.sql('select order_id, user_id, value_cents, category, tier, country, ts from orders order by order_id limit 5')); \
	print(c.sql('select country, country_name, plan, left(email, 16) as email_hmac from signups'))"

test: install-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest -q -p no:cacheprovider

# the fault-injection matrix, run in full, rewrites docs/reliability.md
reliability-doc: install-dev
	HEADWATER_WRITE_RELIABILITY_DOC=1 $(BIN)/pytest -q -p no:cacheprovider tests/reliability

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports

bench: install-dev
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .headwater dist build *.egg-info
