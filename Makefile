# `make help` lists the targets and what each does (from the `## ` comments below).

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

.DEFAULT_GOAL := help
.PHONY: help setup plots-template repro app-model prerequisites test test-fast lint format verify \
	plots docs bench bench-torch profile-train serve bench-serve bench-runtimes tune lock check-wheels \
	check-lock python clean

# Every target with a `## ` comment is listed by `make help`, in this file's order.
help: ## list the targets and what each does
	@awk 'BEGIN { FS = ":[^#]*## " } /^[a-z][a-z-]*:.*## / { printf "  make %-15s %s\n", $$1, $$2 }' \
	  $(MAKEFILE_LIST)

setup: $(STAMP) plots-template ## create .venv from requirements.lock (once; again when it changes)

$(STAMP): requirements.lock pyproject.toml
	rm -f $(VENV)/.installed-*
	@test -x $(BIN)/python || { $(PYTHON) -c '$(SAY_PYTHON)' && echo '$(PYTHON) -m venv $(VENV)' \
	  && $(PYTHON) -m venv $(VENV); }
	@printf '$(VENV): '; $(BIN)/python -c '$(SAY_PYTHON)'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes \
	  -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# The offline report template: DVC's, with vega, vega-lite and vega-embed inlined from the locked
# vl-convert-python, so `dvc plots show` renders without a CDN. It is set in the git-ignored
# .dvc/config.local, never in the committed .dvc/config: a clone that has not run this uses
# DVC's own template, which loads the three libraries from a CDN.
plots-template: $(PLOTS_TEMPLATE)
	@grep -qs html_template .dvc/config.local || \
	  $(BIN)/dvc config --local plots.html_template ../$(PLOTS_TEMPLATE)

# (Built after $(STAMP): setup lists it first. requirements.lock pins vl-convert-python.)
$(PLOTS_TEMPLATE): tools/build_plots_template.py requirements.lock
	$(BIN)/python -m tools.build_plots_template $@

# DVC reads params.yaml itself, expanding YAML aliases, before any stage runs: a small file of
# nested aliases would take it minutes and gigabytes. This refuses such a file first.
CHECK_PARAMS := $(BIN)/python -m tools.check_params_file params.yaml app-model/recipe.yaml

repro: setup ## set up, then run the pipeline: dvc repro (MNIST_MIRROR=folder or URL)
	$(CHECK_PARAMS)
	$(BIN)/dvc repro

app-model: setup ## set up, then build the app's model: dvc repro app-model/dvc.yaml
	$(CHECK_PARAMS)
	$(BIN)/dvc repro app-model/dvc.yaml

# The system packages the tests need (Chromium, sshd, shellcheck): checked with the standard
# library before anything is installed, so that a missing one stops `make test` in a second.
prerequisites: ## check the system packages make test needs; say how to install any missing
	@$(PYTHON) -m tools.check_prerequisites

lint: setup ## ruff: lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup ## ruff: format the code and fix what it can
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: prerequisites lint ## set up, then lint and run the whole test suite
	$(BIN)/python -m pytest

test-fast: lint ## lint and the tests not marked slow (no browser, no sshd needed)
	$(BIN)/python -m pytest -m "not slow"

check-wheels: setup ## ask PyPI whether every locked package has a wheel for every platform
	$(BIN)/python -m tools.check_wheels

verify: setup ## rerun both pipelines from scratch; fail if a lock, metrics/ or plots/ change
	$(CHECK_PARAMS)
	$(BIN)/dvc repro --force --all-pipelines
	$(BIN)/python -m tools.verify_outputs $(if $(STRICT),--strict)

plots: setup ## write the HTML report of every plot to build/plots (works offline)
	$(BIN)/dvc plots show -o build/plots

docs: setup ## build the documentation site into build/site (mkdocs build --strict)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: setup ## time plain model.fit against the pipeline's training on the real data
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

bench-torch: setup build/torch-venv/.installed-$(TORCH_VERSION) ## the training against PyTorch
	$(BIN)/python -m tools.bench_frameworks

profile-train: setup ## where training time goes: one setting changed at a time, per epoch
	$(BIN)/python -m tools.profile_train

# The tuner's budget: TUNE_ARGS="--trials N --timeout SECONDS --jobs J --study NAME" (docs/experiments.md).
tune: setup ## an Optuna search whose trials are DVC experiments (TUNE_ARGS=...; reruns resume)
	$(BIN)/python -m tools.tune search $(TUNE_ARGS)

serve: setup ## the drawing page on http://127.0.0.1:8000/
	$(BIN)/digits-serve

bench-serve: setup ## the server's latency with 1 and 4 clients, and the app's accuracy
	$(BIN)/python -m tools.bench_serve
	$(BIN)/python -m tools.served_accuracy

bench-runtimes: setup ## the server on ONNX Runtime and on Keras: start, memory, latency
	$(BIN)/python -m tools.bench_runtimes

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

# The container image's lock (Dockerfile): requirements-serve.in's packages at requirements.lock's
# versions, so the image serves with what the tests ran.
SERVE_COMPILE = $(UV) pip compile requirements-serve.in --constraint requirements.lock --universal \
	--python-version 3.11 --generate-hashes --custom-compile-command 'make lock' --quiet \
	--output-file

lock: $(UV) ## re-resolve requirements.lock for every platform (UPGRADE=1: newest versions)
	$(UV_COMPILE) requirements.lock $(if $(UPGRADE),--upgrade)
	$(SERVE_COMPILE) requirements-serve.lock

# requirements.lock is exactly what make lock makes of pyproject.toml, with the hashes PyPI has
# for its versions: not edited by hand, and not left behind by a change to the dependencies.
# (uv reuses the hashes of a preferred version from the output file, so they are left out.)
check-lock: $(UV) ## fail unless requirements.lock is what make lock makes of pyproject.toml
	sed -e '/--hash=/d' -e 's/ \\$$//' requirements.lock > build/requirements.lock.check
	$(UV_COMPILE) build/requirements.lock.check
	diff -u requirements.lock build/requirements.lock.check \
	  || { echo "requirements.lock is not what make lock makes: run make lock" >&2; exit 1; }
	sed -e '/--hash=/d' -e 's/ \\$$//' requirements-serve.lock > build/requirements-serve.lock.check
	$(SERVE_COMPILE) build/requirements-serve.lock.check
	diff -u requirements-serve.lock build/requirements-serve.lock.check \
	  || { echo "requirements-serve.lock is not what make lock makes: run make lock" >&2; exit 1; }

python: ## which Python make would create .venv with
	@$(PYTHON) -c '$(SAY_PYTHON)'

clean: ## remove .venv, build/ and the caches
	-test ! -x $(BIN)/dvc || $(BIN)/dvc config --local --unset plots.html_template 2>/dev/null
	rm -rf $(VENV) build .pytest_cache .ruff_cache .hypothesis
