# SPDX-License-Identifier: Apache-2.0
# Two commands on a fresh clone: `make demo` and `make test`. Both set up .venv first.
# `make docs` builds the documentation site into docs/_build/html (warnings are errors).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.coco-installed
PROJECTS := pyproject.toml plugins/snp/pyproject.toml plugins/tdx/pyproject.toml tests/example_plugin/pyproject.toml
DOCS_OUT := docs/_build/html

# Which interpreter a Python is (version and real path of the base executable): the venv is
# made anew when its interpreter is not $(PYTHON)'s, as after `make PYTHON=python3.12 ...`.
PY_ID := import os, sys; print(sys.version.split()[0], os.path.realpath(sys._base_executable))
WANT_PY := $(shell $(PYTHON) -c '$(PY_ID)' 2>/dev/null)
VENV_PY := $(shell test -x $(BIN)/python && $(BIN)/python -c '$(PY_ID)' 2>/dev/null)

.PHONY: setup demo test lint typecheck pytest bench docs docs-tables clean FORCE

setup: $(STAMP)

ifneq ($(VENV_PY),$(WANT_PY))
$(STAMP): FORCE
endif

$(STAMP): $(PROJECTS)
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null || \
	  { echo "setup failed: coco needs Python 3.11 or newer as '$(PYTHON)' (try: make PYTHON=python3.11 ...)"; exit 1; }
	@if [ -n "$(VENV_PY)" ] && [ "$(VENV_PY)" != "$(WANT_PY)" ]; then \
	  echo "setup: $(VENV) runs Python $(VENV_PY), not $(PYTHON) ($(WANT_PY)): making it anew"; \
	  rm -rf $(VENV); fi
	@test -x $(BIN)/python || { echo "setup: creating $(VENV) with $(PYTHON) (Python $(WANT_PY))"; \
	  $(PYTHON) -m venv $(VENV); } || \
	  { echo "setup failed: could not create $(VENV) (on Debian: apt-get install python3-venv)"; exit 1; }
	@echo "setup: upgrading pip in $(VENV)"
	@$(BIN)/python -m pip install --quiet --upgrade pip || \
	  echo "setup: pip could not upgrade itself (see above); going on with the pip $(VENV) has"
	@echo "setup: installing coco-core, coco-snp, coco-tdx and the example plugin (editable), with the dev and docs tools (about a minute on a fresh clone)"
	@$(BIN)/python -m pip install --quiet -e '.[dev,docs]' -e plugins/snp -e plugins/tdx -e tests/example_plugin || \
	  { echo "setup failed: pip could not install the packages (is PyPI reachable? see the pip output above)"; exit 1; }
	@echo "setup: compiling the sources to bytecode (so that coco starts fast even where PYTHONDONTWRITEBYTECODE is set)"
	@$(BIN)/python -m compileall -q coco_core plugins/snp/coco_snp plugins/tdx/coco_tdx tests/example_plugin/coco_example >/dev/null
	@touch $(STAMP)
	@echo "setup: $(VENV) ready (Python $(WANT_PY))"

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

docs: $(STAMP)
	@$(BIN)/sphinx-build -W --keep-going -q -b html docs $(DOCS_OUT) || \
	  { echo "docs failed: sphinx reported the warnings above (each one is an error here)"; exit 1; }
	@echo "docs: the site is in $(DOCS_OUT)/index.html"

bench: $(STAMP)
	$(BIN)/python bench/run.py

docs-tables: $(STAMP)
	$(BIN)/python docs/gen_tables.py && $(BIN)/python docs/gen_cli.py

clean:
	rm -rf $(VENV) build docs/_build *.egg-info plugins/*/*.egg-info tests/example_plugin/*.egg-info

FORCE:
