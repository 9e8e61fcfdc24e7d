# Two commands do everything: `make demo` and `make test`.
# Both create .venv if needed and install pinned versions first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export MPLBACKEND := agg

.PHONY: demo test install bench clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,tensorboard,lightning,transformers,keras]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/impediments list
	$(BIN)/impediments reproduce --quick --out reproduce-out

test: $(STAMP) chromium
	$(BIN)/python -m pytest -q -p no:cacheprovider

# The playground's browser tests drive Debian's chromium through Playwright (never `playwright install`).
chromium:
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium) || \
	  { echo "the browser tests need Debian's chromium: run 'sudo apt-get install -y chromium'" >&2; exit 1; }

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[bench]"
	for f in benchmarks/*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) reproduce-out .pytest_cache
