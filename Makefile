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

# `make demo` installs only what the demo runs (torch, numpy, matplotlib, scikit-learn, mnist1d, rich), and of
# torch only what its Python side runs: first torch's dependencies but networkx (torch.fx's graph partitioners,
# for torch.compile; every optimizer imports torch._dynamo, hence sympy, so sympy stays) and the project's own,
# read from pyproject.toml; then torch and the project without dependencies; then the C++ unit-test executables
# the torch wheel ships (torch/test, torch/bin's tests and protoc: about 130 MB, run by no Python code) are
# removed. tests/test_lean_demo.py runs the demo's commands with all of these missing. `make test` adds the
# extras the tests exercise, and networkx back. --no-compile: Python writes the bytecode of what it imports
# when it first imports it, instead of pip compiling every file of every package up front.
TEST_STAMP := $(VENV)/.installed-test
TESTED_EXTRAS := test,notebook,tensorboard,lightning,transformers,keras,docs
TORCH_RUNTIME := filelock fsspec jinja2 sympy typing-extensions
PROJECT_DEPS = $$($(BIN)/python -c "import tomllib; print(' '.join(d for d in tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'] if not d.startswith('torch')))")
TORCH_DIR = $$($(BIN)/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/torch

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -c constraints.txt $(TORCH_RUNTIME) $(PROJECT_DEPS)
	$(BIN)/python -m pip install --quiet --no-compile -c constraints.txt --no-deps torch==2.13.0
	$(BIN)/python -m pip install --quiet --no-compile -c constraints.txt --no-deps -e .
	rm -rf $(TORCH_DIR)/test $(TORCH_DIR)/bin/test_* $(TORCH_DIR)/bin/*Test $(TORCH_DIR)/bin/protoc*
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --no-compile -c constraints.txt -e ".[$(TESTED_EXTRAS)]" networkx
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
