# Two commands do everything on a fresh machine:
#   make run    install, then train and evaluate recipes/affectvlm.yaml on the synthetic default
#   make test   install (with test tools), then run the whole test suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install run quick test docs-picture

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e ".[dev,app]"
	touch $@

run: install
	$(BIN)/affectkit run recipes/affectvlm.yaml

quick: install
	$(BIN)/affectkit run recipes/quick.yaml

test: install
	$(BIN)/python -m pytest

docs-picture: install
	$(BIN)/python docs/make_expressions_figure.py
