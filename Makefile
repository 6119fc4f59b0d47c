# Every target bootstraps .venv from a bare python3 when it is missing or pyproject changed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

test: $(STAMP)
	$(PY) -m pytest -q

# Figures, not pass/fail: see tests/perf/bench.py --help (BENCH_ARGS="--write" updates RESULTS.md).
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) tests/perf/bench.py $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The GitHub workflows and the composite action against their schemas, then zizmor's security
# audit offline: any finding of medium severity or above fails.
.PHONY: check-workflows
check-workflows: $(STAMP)
	$(PY) -m pip install --quiet 'check-jsonschema==0.39.0' 'zizmor==1.32.0'
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(VENV)/bin/check-jsonschema --builtin-schema custom.github-workflows-require-timeout \
		.github/workflows/*.yml
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-actions action.yml
	$(VENV)/bin/zizmor --offline --min-severity medium .github/workflows action.yml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
