# Two entry points for a fresh machine: `make book` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: book test env browser clean

# The environment is rebuilt only when the pins or the package metadata change.
$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt -e ".[test]"
	touch $(STAMP)

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

# pytest exits 5 when it collects no test; that is not a failure of the suite.
test: $(STAMP) browser
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc

clean:
	rm -rf _build
