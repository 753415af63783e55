# Two commands do all set-up: `make run` (the default matrix) and `make test` (the test suite).
# Both create .venv when missing and install the project with pinned versions; both are fast when it exists.
# `make test` also provides a headless Chromium for the leaderboard page test (.ci/install-browser: apt-get,
# skipped when one is on PATH). `make check` is the CI gate: the pinned CI matrix against leaderboards/ci.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CONFIG ?= configs/default.toml
CHECK_CONFIG ?= configs/ci.toml
PYTEST_ARGS ?=

.PHONY: run test check browser install clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(PY) -m benchmark run --matrix --config $(CONFIG)

test: $(STAMP) browser
	$(PY) -m ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

browser:
	@bash .ci/install-browser

check: $(STAMP)
	$(PY) -m benchmark check --config $(CHECK_CONFIG) --no-progress

clean:
	rm -rf runs .pytest_cache
