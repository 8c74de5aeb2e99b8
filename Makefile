# Two entry points for a fresh machine: `make demo` (pipeline on the embedded demo data, offline)
# and `make test` (the test suite). Both create .venv and install the package on first use.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
CORES ?= 2
# pytest-xdist workers: the integration tests wait on SLURM's polling and on single-threaded
# jobs, and a second worker runs other tests in that time (measured in docs/benchmarks.md)
TEST_WORKERS ?= 2

# Debian packages the SLURM and report tests use (as root; without them those tests skip).
SYSTEM_PACKAGES := munge slurmctld slurmd slurm-client chromium

.PHONY: demo test lint clean system-deps

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,text]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/snakemake --cores $(CORES) --configfile config/demo.yaml

test: $(VENV)/.installed
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

system-deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests benchmarks experiments workflow/scripts
	$(BIN)/mypy src
	$(BIN)/snakemake --lint

clean:
	rm -rf results/data results/models results/metrics results/predictions results/hybrid \
		results/tables results/figures logs benchmarks/out .snakemake
