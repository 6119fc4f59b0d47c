# Every target bootstraps .venv from a bare python3 and installs exactly the lock,
# requirements/dev.txt (hashes checked), again whenever the lock or pyproject.toml changes.
# `make lock` regenerates the locks from pyproject's ranges.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
LOCK   := requirements/dev.txt
LOCKED := $(VENV)/.locked
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench lock clean schemas

# A new venv each time (--clear): a package the lock no longer lists must not linger.
$(LOCKED): $(LOCK)
	$(PYTHON) -m venv --clear $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r $(LOCK)
	touch $(LOCKED)

# The package itself, editable, built by the locked setuptools (no build isolation), with no
# index: every requirement of it and its extras must already be there from the lock, so a range
# added or raised in pyproject.toml without `make lock` fails here instead of going unlocked.
$(STAMP): $(LOCKED) pyproject.toml
	$(PY) -m pip install --quiet --no-index --no-build-isolation -e '.[test,lint,bench]' \
		|| { echo "$(LOCK) does not satisfy pyproject.toml: run make lock" >&2; exit 1; }
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

test: $(STAMP)
	$(PY) -m pytest -q

# Figures, not pass/fail: see tests/perf/bench.py --help (BENCH_ARGS="--write" updates RESULTS.md).
bench: $(STAMP)
	$(PY) tests/perf/bench.py $(BENCH_ARGS)

# The JSON Schemas from the models of the files they describe; tests fail while they differ.
schemas: $(STAMP)
	$(PY) -m reconciler.schemagen schemas

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The GitHub workflows and the composite action against their schemas, then zizmor's security
# audit offline: any finding of medium severity or above fails.
.PHONY: check-workflows
check-workflows: $(STAMP)
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(VENV)/bin/check-jsonschema --builtin-schema custom.github-workflows-require-timeout \
		.github/workflows/*.yml
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-actions action.yml
	$(VENV)/bin/zizmor --offline --min-severity medium .github/workflows action.yml

# The locks, from pyproject.toml's ranges and requirements/dev.in, resolved against the package
# index alone whatever the local pip configuration adds (extra indexes, find-links, constraints).
# Existing pins are kept; `make lock UPGRADE=1` takes every package to its newest allowed version.
# runtime.txt is the package's dependencies and its build backend alone (what the workflows and
# action.yml install); dev.txt adds the extras and the tools, at runtime.txt's versions.
COMPILE := env -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL -u PIP_FIND_LINKS -u PIP_CONSTRAINT \
	PIP_CONFIG_FILE=/dev/null CUSTOM_COMPILE_COMMAND='make lock' $(VENV)/bin/pip-compile --quiet \
	--generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
	$(if $(UPGRADE),--upgrade)

lock: $(LOCKED)
	$(COMPILE) --all-build-deps -o requirements/runtime.txt pyproject.toml
	$(COMPILE) --extra test --extra lint --extra bench -o $(LOCK) pyproject.toml requirements/dev.in

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
