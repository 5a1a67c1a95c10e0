# make repro  - set up .venv from the lock file and run the whole pipeline (dvc repro)
# make app-model - set up, then build the app's model only (dvc repro evaluate-app: the data
#               stages, train-app and evaluate-app), for digits-predict and digits-serve
# make test   - set up, then lint and run the whole test suite
# make verify - rerun every stage from scratch; fail if dvc.lock, metrics/ or plots/ change
#               (off the reference platform: report only; STRICT=1 fails there too)
# make plots  - write the HTML report of every plot to build/plots (works offline)
# make bench  - time plain model.fit against the pipeline's training on the real data
# make bench-torch - the pipeline's training against plain PyTorch (PyTorch in build/torch-venv)
# make profile-train - where training time goes: one setting changed at a time, per epoch
# make serve  - the drawing page on http://127.0.0.1:8000/ (needs a model: make app-model)
# make bench-serve - API latency with 1 and 4 clients, and the accuracy of the app's model and
#               the pipeline's MLP on drawn, printed and scanned digits (needs both models)
# make test-fast - lint and the tests not marked slow
# make check-wheels - ask PyPI whether every locked package has a wheel for every platform
# make check-lock - fail unless requirements.lock is what make lock makes of pyproject.toml
# make lock   - re-resolve requirements.lock for every platform (keeps its pins; UPGRADE=1: newest)
# make python - which Python make would create .venv with

# The interpreter for .venv: PYTHON=... if given, else the first of these on PATH.
PYTHONS := python3.11 python3.12 python3.13
ifndef PYTHON
PYTHON := $(firstword $(foreach p,$(PYTHONS),$(shell command -v $(p) 2>/dev/null)))
endif
ifeq ($(PYTHON),)
PYTHON = $(error none of $(PYTHONS) is on PATH: install one, or run make PYTHON=/path/to/python3)
endif
# Prints the version and path of the Python it runs in; fails unless that is 3.11 to 3.13.
SAY_PYTHON := import sys; v = sys.version_info; ok = (3, 11) <= v[:2] <= (3, 13); \
	print(f"Python {v.major}.{v.minor}.{v.micro} ({sys.executable})" + ("" if ok else \
	": not supported, the project needs Python 3.11 to 3.13")); sys.exit(not ok)
VENV := .venv
BIN := $(VENV)/bin
PLOTS_TEMPLATE := build/plots_template.html
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
# Stage commands in dvc.yaml say `python`: make it the venv's.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup plots-template repro app-model test test-fast lint format verify plots bench \
	bench-torch profile-train serve bench-serve lock check-wheels check-lock python clean

setup: $(STAMP) plots-template

$(STAMP): requirements.lock pyproject.toml
	rm -f $(VENV)/.installed-*
	@test -x $(BIN)/python || { $(PYTHON) -c '$(SAY_PYTHON)' && echo '$(PYTHON) -m venv $(VENV)' \
	  && $(PYTHON) -m venv $(VENV); }
	@printf '$(VENV): '; $(BIN)/python -c '$(SAY_PYTHON)'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes \
	  -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# The offline report template: DVC's, with vega, vega-lite and vega-embed inlined from npm, so
# `dvc plots show` renders without a CDN. It is set in the git-ignored .dvc/config.local, never
# in the committed .dvc/config: a clone that has not run this (or has no npm) uses DVC's own
# template, which loads the three libraries from a CDN.
plots-template:
	@if command -v npm >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory $(PLOTS_TEMPLATE) && \
	  { grep -qs html_template .dvc/config.local || \
	    $(BIN)/dvc config --local plots.html_template ../$(PLOTS_TEMPLATE); }; \
	else \
	  echo "npm not found: dvc plots show will use DVC's default template (vega from a CDN)"; \
	fi

tools/node_modules/.package-lock.json: tools/package.json tools/package-lock.json
	npm ci --prefix tools --omit=optional --no-audit --no-fund

$(PLOTS_TEMPLATE): tools/build_plots_template.py tools/node_modules/.package-lock.json
	$(PYTHON) -m tools.build_plots_template $@

repro: setup
	$(BIN)/dvc repro

app-model: setup
	$(BIN)/dvc repro evaluate-app

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/python -m pytest

test-fast: lint
	$(BIN)/python -m pytest -m "not slow"

check-wheels: setup
	$(BIN)/python -m tools.check_wheels

verify: setup
	$(BIN)/dvc repro --force
	$(BIN)/python -m tools.verify_outputs $(if $(STRICT),--strict)

plots: setup
	$(BIN)/dvc plots show -o build/plots

bench: setup
	$(BIN)/python -m tools.bench_train

# PyTorch only for the comparison, in its own venv: never a dependency of the pipeline. pip takes
# the CPU build where pip is set up to find it (--index-url https://download.pytorch.org/whl/cpu).
TORCH_VERSION := 2.13.0
build/torch-venv/.installed-$(TORCH_VERSION):
	rm -rf build/torch-venv
	$(PYTHON) -m venv build/torch-venv
	build/torch-venv/bin/python -m pip install --quiet --disable-pip-version-check \
	  torch==$(TORCH_VERSION) numpy
	touch $@

bench-torch: setup build/torch-venv/.installed-$(TORCH_VERSION)
	$(BIN)/python -m tools.bench_frameworks

profile-train: setup
	$(BIN)/python -m tools.profile_train

serve: setup
	$(BIN)/digits-serve

bench-serve: setup
	$(BIN)/python -m tools.bench_serve
	$(BIN)/python -m tools.served_accuracy

# One lock for every platform and Python version in README.md's table, resolved by uv (pinned,
# from PyPI, in build/) with the current requirements.lock as preferences: pins only move when
# pyproject.toml requires it, or with UPGRADE=1. The platforms are [tool.uv] environments.
UV_VERSION := 0.13.9
UV := build/uv-$(UV_VERSION)/bin/uv

$(UV):
	$(PYTHON) -m venv build/uv-$(UV_VERSION)
	build/uv-$(UV_VERSION)/bin/python -m pip install --quiet --disable-pip-version-check \
	  uv==$(UV_VERSION)

UV_COMPILE = $(UV) pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command 'make lock' --quiet --output-file

lock: $(UV)
	$(UV_COMPILE) requirements.lock $(if $(UPGRADE),--upgrade)

# requirements.lock is exactly what make lock makes of pyproject.toml, with the hashes PyPI has
# for its versions: not edited by hand, and not left behind by a change to the dependencies.
# (uv reuses the hashes of a preferred version from the output file, so they are left out.)
check-lock: $(UV)
	sed -e '/--hash=/d' -e 's/ \\$$//' requirements.lock > build/requirements.lock.check
	$(UV_COMPILE) build/requirements.lock.check
	diff -u requirements.lock build/requirements.lock.check \
	  || { echo "requirements.lock is not what make lock makes: run make lock" >&2; exit 1; }

python:
	@$(PYTHON) -c '$(SAY_PYTHON)'

clean:
	-test ! -x $(BIN)/dvc || $(BIN)/dvc config --local --unset plots.html_template 2>/dev/null
	rm -rf $(VENV) build .pytest_cache .ruff_cache .hypothesis
