# revopt — see README.md. `make demo` runs the demo shop; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_SESSIONS ?= 20000
export DJANGO_SETTINGS_MODULE ?= revopt.settings.dev

.PHONY: install demo serve test test-postgres bench bench-recommend bench-experiments bench-pricing bench-abandonment bench-funnel lint system-packages

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

system-packages:
	bin/system-packages chromium

demo: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py setup_demo
	$(PY) manage.py simulate --merchant demo --sessions $(DEMO_SESSIONS) --seed 7 --policy offers --session-signals --if-empty
	-$(PY) manage.py data_quality_report --merchant demo
	-$(PY) manage.py train_recommenders --merchant demo
	-$(PY) manage.py pricing_refresh --merchant demo
	-$(PY) manage.py loyalty_refresh --merchant demo
	-$(PY) manage.py funnel_refresh --merchant demo
	@echo ""
	@echo "revopt demo at http://$(HOST):$(PORT)/  —  log in as demo / $${DEMO_PASSWORD:-revopt-demo} (platform admin: admin). Ctrl-C to stop."
	$(PY) manage.py runserver $(HOST):$(PORT) --noreload

# --ds: the exported DJANGO_SETTINGS_MODULE (dev) would otherwise beat pyproject's test settings.
test: install system-packages
	$(VENV)/bin/pytest -n 2 --ds=revopt.settings.test

test-postgres: install system-packages
	bin/with-services $(VENV)/bin/pytest -n 2 --ds=revopt.settings.test

bench: install
	bin/with-services $(PY) bench/ingest.py

bench-recommend: install
	bin/with-services $(PY) bench/recommend.py

bench-experiments: install
	bin/with-services $(PY) bench/experiments.py

bench-pricing: install
	bin/with-services $(PY) bench/pricing.py

bench-abandonment: install
	bin/with-services $(PY) bench/abandonment.py

bench-funnel: install
	bin/with-services $(PY) bench/funnel_screen.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
