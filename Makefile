# make repro  - set up .venv from the lock file and run the whole pipeline (dvc repro)
# make test   - set up, then lint and run the whole test suite
# make verify - rerun every stage from scratch; fail if dvc.lock, metrics/ or plots/ change
# make plots  - write the HTML report of every plot to build/plots (works offline)
# make bench  - time plain model.fit against the pipeline's training on the real data
# make serve  - the drawing page on http://127.0.0.1:8000/ (needs the trained model: make repro)
# make bench-serve - API latency with 1 and 4 clients, accuracy on drawn digits (needs the model)

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PLOTS_TEMPLATE := build/plots_template.html
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
# Stage commands in dvc.yaml say `python`: make it the venv's.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup plots-template repro test lint format verify plots bench serve bench-serve lock clean

setup: $(STAMP) plots-template

$(STAMP): requirements.lock pyproject.toml
	rm -f $(VENV)/.installed-*
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
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
	$(PYTHON) tools/build_plots_template.py $@

repro: setup
	$(BIN)/dvc repro

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/python -m pytest

verify: setup
	$(BIN)/dvc repro --force
	$(BIN)/python tools/verify_outputs.py

plots: setup
	$(BIN)/dvc plots show -o build/plots

bench: setup
	$(BIN)/python tools/bench_train.py

serve: setup
	$(BIN)/digits-serve

bench-serve: setup
	$(BIN)/python tools/bench_serve.py

# Re-resolve the newest versions allowed by pyproject.toml into requirements.lock.
lock:
	rm -rf build/lock-venv
	$(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/python -m pip install --quiet -e '.[dev]'
	{ head -n 2 requirements.lock; build/lock-venv/bin/python -m pip freeze --exclude-editable; \
	  build/lock-venv/bin/python -m pip freeze --all | grep '^setuptools=='; } > requirements.lock.new
	mv requirements.lock.new requirements.lock
	rm -rf build/lock-venv

clean:
	-test ! -x $(BIN)/dvc || $(BIN)/dvc config --local --unset plots.html_template 2>/dev/null
	rm -rf $(VENV) build .pytest_cache .ruff_cache .hypothesis
