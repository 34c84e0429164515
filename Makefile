# Two entry points (see README.md):  make book  |  make test
# Each sets up .venv first (idempotent: skipped when pyproject.toml is unchanged).

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JUPYTER_STAMP := $(VENV)/.jupyter-installed
JUPYTER_FILES := jupyter/install.py jupyter/kernel_startup.py jupyter/lab_settings_overrides.json
SHARED_DATA := $(abspath ../shared/data/cifar10-jpeg.tar.gz)
# The offline copy beside this checkout is used when BNLIB_DATA is not set;
# elsewhere set BNLIB_DATA yourself (or leave it unset to download via Keras).
export BNLIB_DATA ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),)
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: setup book test test-unit test-notebooks check-sync lab smoke bench run-book run-controls run-optimizer plot clean

setup: $(STAMP) $(JUPYTER_STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: no python3.11 or python3 on PATH; install Python 3.11 (or pass PYTHON=/path/to/python)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' || { echo "error: $(PYTHON) is older than 3.11; install Python 3.11 (or pass PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

# Jupyter set-up inside .venv (never the user's home): the python3 kernelspec
# (TensorFlow's start-up lines kept out of notebook outputs) and JupyterLab
# settings (.md twins open as Jupytext notebooks; no news pop-ups). Redone after
# every pip install, which rewrites ipykernel's kernelspec.
$(JUPYTER_STAMP): $(STAMP) $(JUPYTER_FILES)
	$(BIN)/python jupyter/install.py >/dev/null
	touch $(JUPYTER_STAMP)

# The main job: build the book from the committed notebook outputs (no training).
book: setup
	JUPYTER_BOOK=$(BIN)/jupyter-book bash book/build.sh

# Everything CI checks.
test: setup check-sync
	bash tests/install_browser.sh
	$(BIN)/python -m pytest -q tests
	$(MAKE) test-notebooks

test-unit: setup
	$(BIN)/python -m pytest -q tests -m "not slow"

test-notebooks: setup
	BNLIB_PROFILE=smoke $(BIN)/python -m pytest -q -p no:cacheprovider --nbval-lax \
	  --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg notebooks/

# Notebook pairs (.ipynb + .md) must be in sync: regenerate and fail on a diff.
check-sync: setup
	$(BIN)/jupytext --sync notebooks/*.ipynb >/dev/null
	git diff --exit-code -- notebooks/ || { echo "error: notebooks/ pairs out of sync: run '$(BIN)/jupytext --sync notebooks/*.ipynb' and commit"; exit 1; }

# The .md twins open as notebooks on a double click (settings from jupyter/).
lab: setup
	$(BIN)/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root,)

smoke: setup
	$(BIN)/python -m bnlib run --profile smoke

run-book: setup
	$(BIN)/python -m bnlib run --grid article --workers 2

# Chapter 05's controls, in the order its issues ask: the dropout-0 runs with
# standardized inputs, the other input/placement controls, the rest of the
# standardized grid, and the 40-epoch budget last. Resumable: rerun to go on.
run-controls: setup
	# seed 0 of the first four, then the headline pair (none vs conv+dense) to 3 seeds,
	# then the other controls: every step is resumable and skips finished runs
	$(BIN)/python -m bnlib run --grid standardized --runs 0,3,6,9 --seeds 1 --workers 2
	$(BIN)/python -m bnlib run --grid standardized --runs 0,9 --workers 2
	$(BIN)/python -m bnlib run --grid inputs --seeds 1 --workers 2
	$(BIN)/python -m bnlib run --grid standardized --runs 3,6 --workers 2
	$(BIN)/python -m bnlib run --grid inputs --workers 2
	$(BIN)/python -m bnlib run --grid budget --workers 2
	$(BIN)/python -m bnlib run --grid standardized --workers 2

run-optimizer: setup
	$(BIN)/python -m bnlib run --grid figure1pilot
	$(BIN)/python -m bnlib run --grid figure1 --workers 2
	$(BIN)/python -m bnlib run --grid lrmap --workers 2
	$(BIN)/python -m bnlib run --grid lradam --workers 2
	$(BIN)/python -m bnlib run --grid lrfollowup --workers 2

plot: setup
	$(BIN)/python -m bnlib plot --results-dir results/book --out book/figures

bench: setup
	$(BIN)/python -m bnlib bench

clean:
	rm -rf book/_build
