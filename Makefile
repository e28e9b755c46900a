# The two commands of the quick start: `make demo` and `make test`.
# Each creates .venv if missing and installs the package with what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,text]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/niwt demo --out runs/demo --force
	$(BIN)/niwt report runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/transfer.py --quick
	$(BIN)/python benchmarks/importance.py --quick

clean:
	rm -rf runs .pytest_cache
