# Two commands a newcomer needs: `make demo` (start the app with the shipped models) and
# `make test` (pass the tests). Both set up .venv themselves, idempotently.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export GRADIO_ANALYTICS_ENABLED := False
export GRADIO_TEMP_DIR := $(CURDIR)/.gradio/tmp
export MPLBACKEND := Agg

.PHONY: demo test setup test-setup bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

test-setup: $(VENV)/.test-installed

$(VENV)/.test-installed: $(VENV)/.installed requirements-test.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-test.txt
	@if [ ! -x /usr/bin/chromium ] || ! dpkg -s fonts-noto-cjk >/dev/null 2>&1; then \
	  echo "installing Debian chromium and a CJK font for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver fonts-noto-cjk; \
	fi
	@touch $@

demo: setup
	$(PY) app.py

test: test-setup
	mkdir -p $(GRADIO_TEMP_DIR)
	$(PY) -m pytest -q tests

bench: setup
	$(PY) bench/train_throughput.py
	$(PY) bench/ui_latency.py

clean:
	rm -rf .gradio .pytest_cache runs cache
