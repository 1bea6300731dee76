# SPDX-License-Identifier: Apache-2.0
# Two commands on a fresh clone: `make demo` and `make test`. Both set up .venv first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.coco-installed
PROJECTS := pyproject.toml plugins/snp/pyproject.toml plugins/tdx/pyproject.toml tests/example_plugin/pyproject.toml

.PHONY: setup demo test lint typecheck pytest bench fuzz docs-tables clean

setup: $(STAMP)

$(STAMP): $(PROJECTS)
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null || \
	  { echo "setup failed: coco needs Python 3.11 or newer as '$(PYTHON)' (try: make PYTHON=python3.11 ...)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || \
	  { echo "setup failed: could not create $(VENV) (on Debian: apt-get install python3-venv)"; exit 1; }
	@$(BIN)/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
	@$(BIN)/python -m pip install --quiet -e '.[dev]' -e plugins/snp -e plugins/tdx -e tests/example_plugin || \
	  { echo "setup failed: pip could not install the packages (is PyPI reachable? see the pip output above)"; exit 1; }
	@touch $(STAMP)
	@echo "setup: $(VENV) ready (coco-core, coco-snp, coco-tdx, example plugin, dev tools)"

demo: $(STAMP)
	$(BIN)/coco demo

lint: $(STAMP)
	@$(BIN)/ruff check . || { echo "lint failed: fix the findings above (many: $(BIN)/ruff check --fix .)"; exit 1; }
	@$(BIN)/ruff format --check . || { echo "lint failed: the files above are not formatted (fix: $(BIN)/ruff format .)"; exit 1; }

typecheck: $(STAMP)
	@$(BIN)/mypy --strict || { echo "typecheck failed: mypy --strict found the errors above"; exit 1; }

pytest: $(STAMP)
	@$(BIN)/pytest -q || { echo "tests failed: see the failures above (one test: $(BIN)/pytest -q PATH::NAME)"; exit 1; }

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python bench/run.py

# The guest-hostility suite for FUZZ_SECONDS (make test runs it briefly): make fuzz FUZZ_SECONDS=600
FUZZ_SECONDS ?= 300
fuzz: $(STAMP)
	@COCO_FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/pytest -q tests/hostile || { echo "fuzz failed: the falsifying example is printed above"; exit 1; }

docs-tables: $(STAMP)
	$(BIN)/python docs/gen_tables.py && $(BIN)/python docs/gen_cli.py

clean:
	rm -rf $(VENV) build *.egg-info plugins/*/*.egg-info tests/example_plugin/*.egg-info
