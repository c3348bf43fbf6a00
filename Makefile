# Two commands on a fresh machine (README): `make report` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: report test unit e2e lint sysdeps venv bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,peers]'
	touch $@

# Debian packages: lbzip2 (parallel bz2 decompression in ingest) and chromium (the report is
# checked in a headless browser). Installed only where missing, and only as root.
sysdeps:
	@missing=""; \
	command -v lbzip2 >/dev/null || missing="$$missing lbzip2"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "note: install$$missing with apt-get for the full test suite"; fi; \
	fi

report: venv sysdeps
	$(BIN)/snakemake --cores $(CORES) results/report.html

test: venv sysdeps
	$(BIN)/ruff check src tests bench workflow
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/pytest -q

unit: venv
	$(BIN)/pytest -q -m "not e2e"

lint: venv
	$(BIN)/ruff check src tests bench workflow
	$(BIN)/ruff format --check src tests bench workflow
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

bench: venv sysdeps
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf results logs benchmarks .snakemake
