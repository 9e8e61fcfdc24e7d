# Two commands do everything: `make demo` and `make test`.
# Both create .venv if needed and install pinned versions first (the demo's dependencies only, for demo).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export MPLBACKEND := agg

.PHONY: demo test install bench clean chromium docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# `make demo` installs only what the demo runs (torch, numpy, matplotlib, scikit-learn, mnist1d, rich);
# `make test` adds the extras the tests exercise. --no-compile: Python writes the bytecode of what it
# imports when it first imports it, instead of pip compiling every file of every package up front.
TEST_STAMP := $(VENV)/.installed-test
TESTED_EXTRAS := test,notebook,tensorboard,lightning,transformers,keras,docs

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install --quiet --no-compile -c constraints.txt -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --no-compile -c constraints.txt -e ".[$(TESTED_EXTRAS)]"
	touch $(TEST_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/impediments list
	$(BIN)/impediments reproduce --quick --out reproduce-out

test: $(TEST_STAMP) chromium
	$(BIN)/python -m pytest -q -p no:cacheprovider

# The playground's browser tests drive Debian's chromium through Playwright (never `playwright install`).
chromium:
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium) || \
	  { echo "the browser tests need Debian's chromium: run 'sudo apt-get install -y chromium'" >&2; exit 1; }

# The documentation site (MkDocs, offline: no fonts, no CDN) into build/site; --strict fails on any warning
docs: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-compile -c constraints.txt -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[bench]"
	for f in benchmarks/*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) reproduce-out .pytest_cache
