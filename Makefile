# Two entry points: `make demo` (install, then the demo reproduction) and `make test`.
# Both install into .venv first and are safe to run again.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 4
# `make demo` trains the demo afresh into DEMO_OUT (git-ignored): results/demo is the committed
# reference to compare it with, and a workflow keeps the finished runs it finds.
DEMO_OUT ?= results/demo-rerun
# `make tables CONFIG=config/config.yaml` for the full reproduction's tables; RESULTS names
# another results folder than the preset's (`make tables RESULTS=results/demo-rerun` after
# `make demo`).
CONFIG ?= config/demo.yaml
RESULTS ?=
# The rules call `stnbench`; the workflow profile limits GPU jobs to one at a time.
SNAKEMAKE = PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --workflow-profile workflow/profiles/default

.PHONY: install demo reproduce tables report test lint gpu-bundle gpu-wheels gpu-setup gpu-check gpu-schedule-study \
	gpu-bundle-gtsrb48 gpu-train

install: $(STAMP)

# torch's CUDA build (the pinned one, which also runs on CPU) fills about 6 GB: a full disk
# would otherwise surface as pip's OSError half-way through the install. The space is measured
# where the venv goes, so that `.venv` can be a link to a folder on a roomier disk (venv itself
# refuses a link, so it is given the folder).
VENV_NEEDS_GB := 7

# constraints.txt pins every package at a tested version, so that installs months apart agree.
$(STAMP): pyproject.toml constraints.txt
	@venv_home=$$(if [ -d $(VENV) ]; then readlink -f $(VENV); else echo $(CURDIR); fi); \
	free_gb=$$(df -Pk "$$venv_home" | awk 'NR == 2 {print int($$4 / 1048576)}'); \
	if [ "$$free_gb" -lt $(VENV_NEEDS_GB) ] && [ ! -d $(VENV)/lib ]; then \
		echo "make install: $(VENV) needs about $(VENV_NEEDS_GB) GB of disk, $$free_gb GB free in $$venv_home" >&2; \
		exit 1; \
	fi
	$(PYTHON) -m venv "$$(readlink -f $(VENV))"
	$(BIN)/python -m pip install --quiet --upgrade pip -c constraints.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,slurm]'
	touch $(STAMP)

demo: install
	$(SNAKEMAKE) --cores $(CORES) --configfile config/demo.yaml --config results_dir=$(DEMO_OUT)

reproduce: install
	$(SNAKEMAKE) --cores $(CORES)

tables: install
	$(SNAKEMAKE) tables --cores 1 --configfile $(CONFIG) $(if $(RESULTS),--config results_dir=$(RESULTS))

report: install
	$(SNAKEMAKE) --configfile $(CONFIG) --report report.html

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(SNAKEMAKE) --lint

# A GPU machine lent for minutes: `make gpu-check` there runs benchmarks/gpu_check.py (the CUDA
# tests, the zoo's GPU cost into results/bench/<gpu>/, a 48 px GTSRB epoch per model) in under
# 8 minutes. Its image has Python 3.12 and torch but no network and not everything stnbench
# needs: `make gpu-bundle` here writes .gpu/ (about 19 MB: the wheels it lacks and MNIST's raw
# files gzipped), and the machine gets the working tree with .gpu/ carried beside it.
GPU_PYTHON ?= python3
GPU_WHEELS := "kornia>=0.7,<0.10" kornia_rs jsonschema jsonschema-specifications referencing rpds-py
GPU_PLATFORMS := $(foreach p,manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64,--platform $(p))
GPU_SITE := /tmp/stnbench-gpu-site
# Python there, with the repository and the carried wheels on its path.
GPU_RUN = PYTHONPATH=$(CURDIR):$(GPU_SITE) $(GPU_PYTHON)

gpu-bundle: install
	rm -rf .gpu/whl .gpu/mnist && mkdir -p .gpu/whl .gpu/mnist
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp $(GPU_PLATFORMS) -d .gpu/whl $(GPU_WHEELS)
	$(BIN)/stnbench data prepare mnist --data-dir data
	for f in data/MNIST/raw/*-ubyte; do gzip -9 -c $$f > .gpu/mnist/$$(basename $$f).gz; done
	du -sh .gpu

gpu-wheels:
	$(GPU_PYTHON) -m pip install --quiet --no-index --no-deps --upgrade --target $(GPU_SITE) .gpu/whl/*.whl

gpu-setup: gpu-wheels
	mkdir -p data/MNIST/raw
	for f in .gpu/mnist/*.gz; do gunzip -c $$f > data/MNIST/raw/$$(basename $$f .gz); done

gpu-check: gpu-setup
	$(GPU_RUN) benchmarks/gpu_check.py

# Table 1's schedule study (benchmarks/schedule_study.py) on the GPU: 308 epochs of small MNIST
# networks; its runs stay in the git-ignored .gpu/study/, so a call cut short resumes at the next.
gpu-schedule-study: gpu-setup
	$(GPU_RUN) benchmarks/schedule_study.py --runs .gpu/study \
		--device cuda --out $${OUT:-results/benchmarks}/schedule_study

# The full preset's GTSRB runs at 48 px (config/config.yaml) trained on such a machine, whose
# calls carry tens of MiB while the images are 358 MB: `make gpu-bundle-gtsrb48` here packs the
# prepared cache into .gpu/gtsrb-48px/ as PNG parts of at most 48 MiB, each carried in its own
# call; `make gpu-train` there, once all have arrived, rebuilds the cache and trains the specs
# under GPU_RUNS (written here beforehand by the workflow) for GPU_MINUTES, then writes the
# finished runs to $OUT/gpu_runs.tar.gz (docs/development.md). They train in .gpu/runs/, which
# is git-ignored: a second call to the same machine, whose tree is a fresh copy of this one,
# keeps the runs and checkpoints of the first.
GPU_RUNS ?= results/runs
GPU_MODELS ?= moodstocks-2st,moodstocks-nost,moodstocks-1st
GPU_MINUTES ?= 8

gpu-bundle-gtsrb48: install
	$(BIN)/stnbench data prepare gtsrb --size 48 --data-dir data
	rm -rf .gpu/gtsrb-48px
	$(BIN)/stnbench data pack gtsrb-48px --out .gpu/gtsrb-48px --part-mib 48 --data-dir data

gpu-train: gpu-wheels
	$(GPU_RUN) -m stnbench data unpack .gpu/gtsrb-48px --data-dir data
	mkdir -p .gpu/runs && cp -r -n $(GPU_RUNS)/. .gpu/runs/
	$(GPU_RUN) benchmarks/gpu_train.py --runs .gpu/runs \
		--archive-as $(GPU_RUNS) --models $(GPU_MODELS) --minutes $(GPU_MINUTES) \
		--out $${OUT:-.}/gpu_runs.tar.gz
