# Two entry points for a fresh machine: `make book` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: book test test-pinned test-current env browser clean

# The pinned stack (Python 3.11, allensdk 2.16.2, requirements/constraints.txt): make book and make test.
# The environment is rebuilt only when the pins or the package metadata change.
$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt -e ".[allensdk,book,test]"
	touch $(STAMP)

# The current stack (what Colab has: numpy 2, pandas 2, no allensdk). requirements/current.txt stands for what
# the host already holds; installing the package beside it must leave numpy, pandas and torch as they are and
# must not bring allensdk.
CURRENT_VENV := .venv-current
CURRENT_BIN := $(CURRENT_VENV)/bin
CURRENT_STAMP := $(CURRENT_VENV)/.installed
KEPT := import numpy, pandas, torch; print(numpy.__version__, pandas.__version__, torch.__version__)
$(CURRENT_STAMP): pyproject.toml requirements/current.txt
	rm -rf $(CURRENT_VENV)
	$(PYTHON) -m venv $(CURRENT_VENV)
	$(CURRENT_BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/current.txt
	$(CURRENT_BIN)/python -c "$(KEPT)" > $(CURRENT_VENV)/host-versions.txt
	$(CURRENT_BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	@$(CURRENT_BIN)/python -c "$(KEPT)" | diff $(CURRENT_VENV)/host-versions.txt - \
	  || { echo "make: installing the package changed the host's numpy/pandas/torch (above: before, after)"; exit 1; }
	@if $(CURRENT_BIN)/python -m pip show --quiet allensdk 2>/dev/null; then \
	  echo "make: installing the package into the current stack brought allensdk"; exit 1; fi
	@echo "make: current stack: numpy pandas torch = $$(cat $(CURRENT_VENV)/host-versions.txt), kept; no allensdk"
	touch $(CURRENT_STAMP)

env: $(STAMP) browser

# The browser test (tests/test_browser.py) drives Debian's Chromium. Install it when it is missing and
# we may (root or passwordless sudo); otherwise say so once and carry on: that test then skips.
CHROMIUM := /usr/bin/chromium
browser:
	@if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	else echo "make: $(CHROMIUM) is missing and installing it needs root or passwordless sudo; the browser test will skip (apt-get install chromium to run it)"; exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then echo "make: $(CHROMIUM) is missing and there is no apt-get to install it; the browser test will skip"; exit 0; fi; \
	echo "make: installing Debian's chromium for the browser test"; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null \
	|| echo "make: installing chromium with apt-get failed; the browser test will skip"

book: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/neuroalign build

# Both stacks. pytest exits 5 when it collects no test; that is not a failure of the suite.
test: test-pinned test-current

# ruff first (seconds): lint and format check of the package, tests and benchmarks ([tool.ruff] in pyproject.toml).
test-pinned: $(STAMP) browser
	$(BIN)/ruff check --quiet . && $(BIN)/ruff format --check --quiet .
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc

# The current stack runs every chapter's smoke test, the tests of the own Allen reader, and the packaged
# trained models' (their conversion meets the newest transformers there).
CURRENT_TESTS := tests/test_book.py::test_chapter_runs_with_smoke_parameters tests/test_allen_reader.py \
  tests/test_zoo_pretrained.py
test-current: $(CURRENT_STAMP)
	HF_HUB_OFFLINE=1 $(CURRENT_BIN)/python -m pytest -p no:cacheprovider $(CURRENT_TESTS)

clean:
	rm -rf _build
