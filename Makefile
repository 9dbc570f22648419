# Two commands do everything on a fresh machine:
#   make run    install, then train and evaluate recipes/affectvlm.yaml on the embedded facekit scans
#   make test   install (with test tools), then run the whole test suite
# PyTorch: see constraints.txt (and the README) for the CPU-only wheels.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install install-app install-test run quick app test browser benchmarks fuzz docs docs-picture docs-screenshot docs-tensorboard

# Three install levels, each a stamp in the venv: running (`affectkit run`), the app, and the
# tests with every tool they drive. constraints.txt pins the PyTorch build installed here.
PIP := $(BIN)/python -m pip install -q -c constraints.txt

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e .
	touch $@

install-app: $(VENV)/.installed-app

$(VENV)/.installed-app: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e ".[app]"
	touch $@ $(VENV)/.installed

install-test: $(VENV)/.installed-test

$(VENV)/.installed-test: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e ".[dev,app]"
	touch $@ $(VENV)/.installed $(VENV)/.installed-app

run: install
	$(BIN)/affectkit run recipes/affectvlm.yaml

quick: install
	$(BIN)/affectkit run recipes/quick.yaml

app: install-app
	$(BIN)/affectkit app

# Two test processes (pytest-xdist), each module in one, in the order tests/conftest.py gives
# them (the most end-to-end tests first): much of an end-to-end test is start-up, its own
# and Ray's, which leaves a core idle.
test: install-test browser
	$(BIN)/python -m pytest -n 2 --dist loadscope --no-loadscope-reorder

# The app's browser test drives Debian's Chromium: installed here when we are root with
# apt-get; elsewhere that one test is skipped with its reason.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; }; } || \
	  echo "note: no chromium here; tests/test_app_browser.py will be skipped (apt-get install chromium)"

# Every benchmark on this machine (about 13 minutes on 2 cores, plus about 75 minutes of ablations and 90 of transfer training): JSON in benchmarks/results/,
# tables in docs/benchmarks.md. Open3D's ray caster needs the system library libusb-1.0-0.
benchmarks: install-test
	$(PIP) -e ".[dev,app,bench]"
	$(BIN)/python benchmarks/run_all.py

# 10,000 fuzzed inputs for each reader of user files (about 10 minutes): benchmarks/results/fuzz.json
# and the table in docs/reliability.md.
fuzz: install-test
	$(BIN)/python benchmarks/fuzz.py --inputs 10000 > benchmarks/results/fuzz.json.part
	mv benchmarks/results/fuzz.json.part benchmarks/results/fuzz.json
	$(BIN)/python benchmarks/report.py

# The documentation site (mkdocs.yml, docs/) into site/; warnings are errors.
docs: install-test
	$(BIN)/mkdocs build --strict

docs-picture: install-test
	$(BIN)/python docs/make_expressions_figure.py

docs-tensorboard: install-test browser
	$(BIN)/python docs/make_tensorboard_screenshot.py

docs-screenshot: install-test browser
	AFFECTKIT_APP_SCREENSHOT=$(CURDIR)/docs/app.png $(BIN)/python -m pytest tests/test_app_browser.py
