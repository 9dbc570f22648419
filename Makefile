# Two commands do everything on a fresh machine:
#   make run    install, then train and evaluate recipes/affectvlm.yaml on the embedded facekit scans
#   make test   install (with test tools), then run the whole test suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install run quick app test browser benchmarks fuzz docs docs-picture docs-screenshot

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e ".[dev,app]"
	touch $@

run: install
	$(BIN)/affectkit run recipes/affectvlm.yaml

quick: install
	$(BIN)/affectkit run recipes/quick.yaml

app: install
	$(BIN)/affectkit app

test: install browser
	$(BIN)/python -m pytest

# The app's browser test drives Debian's Chromium: installed here when we are root with
# apt-get; elsewhere that one test is skipped with its reason.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; }; } || \
	  echo "note: no chromium here; tests/test_app_browser.py will be skipped (apt-get install chromium)"

# Every benchmark on this machine (about 13 minutes on 2 cores, plus about 75 minutes of ablations and 90 of transfer training): JSON in benchmarks/results/,
# tables in docs/benchmarks.md. Open3D's ray caster needs the system library libusb-1.0-0.
benchmarks: install
	$(BIN)/python -m pip install -q -e ".[dev,app,bench]"
	$(BIN)/python benchmarks/run_all.py

# 10,000 fuzzed inputs for each reader of user files (about 5 minutes): benchmarks/results/fuzz.json
# and the table in docs/reliability.md.
fuzz: install
	$(BIN)/python benchmarks/fuzz.py --inputs 10000 > benchmarks/results/fuzz.json
	$(BIN)/python benchmarks/report.py

# The documentation site (mkdocs.yml, docs/) into site/; warnings are errors.
docs: install
	$(BIN)/mkdocs build --strict

docs-picture: install
	$(BIN)/python docs/make_expressions_figure.py

docs-screenshot: install browser
	AFFECTKIT_APP_SCREENSHOT=$(CURDIR)/docs/app.png $(BIN)/python -m pytest tests/test_app_browser.py
