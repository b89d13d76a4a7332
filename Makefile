# Two commands on a fresh clone: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
# The CPU wheel here; on a cluster, e.g. `make test TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"`.
TORCH  ?= torch==2.13.0
# `make demo` runs as many jobs at once as the machine has cores; `make demo CORES=2` leaves some free.
CORES  ?= all
# `make test` runs the tests on this many pytest processes (tests/conftest.py says how they share).
TEST_WORKERS ?= 2
PIP    := $(VENV)/bin/pip
BIN    := $(VENV)/bin

.PHONY: install install-dev demo test bench bench-imdb lint format cluster-profile clean FORCE

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# The TORCH the environment was made with: another one (`make test TORCH=...`) reinstalls.
# The old build goes first: pip takes an installed 2.13.0+cpu for torch==2.13.0 from any
# index, so a CUDA build of the same version would never replace it.
$(VENV)/.torch: FORCE | $(BIN)/python
	@echo '$(TORCH)' | cmp -s - $@ || { [ ! -f $@ ] || $(PIP) uninstall --quiet --yes torch; echo '$(TORCH)' > $@; }

# torch goes in first: a bare torch requirement with no torch installed pulls a CUDA build.
$(VENV)/.installed: pyproject.toml $(VENV)/.torch | $(BIN)/python
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The whole DAG at toy scale, offline: data → tuning → training → samples → figures → poster.
# On the CPU even where there is a GPU, as the demo preset is meant: with a job per core,
# every job's CUDA context (a few hundred MB each) would add up on a laptop's GPU.
demo: install
	CUDA_VISIBLE_DEVICES= PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores $(CORES) --config preset=demo
	@echo "poster: results/demo/poster.pdf, figures: results/demo/figures/"

test: install-dev
	$(BIN)/ruff check .
	$(BIN)/pytest -n $(TEST_WORKERS)

# Speed and quality, ours against peers measured in the same run → benchmarks/RESULTS.md.
bench: install-dev
	$(BIN)/python benchmarks/run.py

# The IMDb quality bar: 1,900 steps (5-15 minutes) of training (its result joins RESULTS.md).
bench-imdb: install-dev
	$(BIN)/python benchmarks/bench_quality.py imdb
	$(BIN)/python benchmarks/report.py

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	$(BIN)/snakefmt Snakefile workflow

# `snakemake --profile slurm` from the project: Snakemake finds a profile by name in its
# user folder, so link this project's there (`--profile profiles/slurm` needs no link).
PROFILES ?= $(or $(XDG_CONFIG_HOME),$(HOME)/.config)/snakemake
cluster-profile:
	@mkdir -p "$(PROFILES)"
	@if [ -e "$(PROFILES)/slurm" ] && \
	    [ "$$(readlink -f "$(PROFILES)/slurm")" != "$$(readlink -f profiles/slurm)" ]; then \
	  echo "$(PROFILES)/slurm is another profile; remove it, or use --profile $(CURDIR)/profiles/slurm" >&2; \
	  exit 1; \
	fi
	@ln -sfn "$(CURDIR)/profiles/slurm" "$(PROFILES)/slurm"
	@echo "snakemake --profile slurm: $(PROFILES)/slurm -> $(CURDIR)/profiles/slurm"

# The environment, the caches and the demo's results; other presets' results (a cluster
# run copied back, hours of GPUs) stay: remove those by hand.
clean:
	rm -rf $(VENV) results/demo .pytest_cache .ruff_cache
