# Two entry points: `make demo` (install, then the demo reproduction) and `make test`.
# Both install into .venv first and are safe to run again.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 4

.PHONY: install demo reproduce tables report test lint

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,slurm]'
	touch $(STAMP)

demo: install
	$(BIN)/snakemake --cores $(CORES) --configfile config/demo.yaml

reproduce: install
	$(BIN)/snakemake --cores $(CORES)

tables: install
	$(BIN)/snakemake --cores 1 tables

report: install
	$(BIN)/snakemake --report report.html

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint
