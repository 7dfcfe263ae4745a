# The two set-up commands: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip
	$(VENV)/bin/pip install -r requirements.txt -r requirements-dev.txt
	$(VENV)/bin/pip install --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/snakemake --cores 4

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check ckpt_eval scripts tests bench
	$(VENV)/bin/ruff format --check ckpt_eval scripts tests bench
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules
	$(VENV)/bin/snakemake --lint

# measures this machine (about 40 minutes) and writes bench/RESULTS.md; FIGURES="frechet scale"
# runs some of them, BENCH_ARGS=--quick a short smoke run
bench: $(STAMP)
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS) $(FIGURES)

clean:
	rm -rf results .snakemake
