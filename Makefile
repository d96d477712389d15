# DimeConnect: `make run` starts the app, `make test` runs the whole suite (README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BIND ?= 127.0.0.1:8000
PYTEST_ARGS ?=

.PHONY: run test lint typecheck check fakes install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## run: the app on SQLite (WAL) and the django-q2 ORM broker; Ctrl-C stops it
run: $(VENV)/.installed
	$(BIN)/python -m dimeconnect.envfile
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py first_run --url http://$(BIND)/admin/
	$(BIN)/python manage.py serve --bind $(BIND)

## test: the whole suite (DATABASE_URL / REDIS_URL select PostgreSQL and Redis)
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## fakes: every fake back office on 127.0.0.1:8100+, and demo-connectors.json for them
fakes: $(VENV)/.installed-dev
	$(BIN)/python -m tests.fakes.all

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy .

check: lint typecheck test

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .mypy_cache .ruff_cache
