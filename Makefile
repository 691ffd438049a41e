# Two entry points for a fresh machine: `make book` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: book test env clean

# The environment is rebuilt only when the pins or the package metadata change.
$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt -e ".[test]"
	touch $(STAMP)

env: $(STAMP)

book: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/neuroalign build

# pytest exits 5 when it collects no test; that is not a failure of the suite.
test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc

clean:
	rm -rf _build
