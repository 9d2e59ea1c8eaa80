# The two commands a newcomer needs: `make demo` (the main job) and `make test`.
# Both create .venv on first use; re-running when nothing changed is a no-op.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.vas_ros_installed

export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST

.PHONY: venv test lint demo bench clean-venv

venv: $(STAMP)

$(STAMP): requirements.txt setup.py setup.cfg package.xml CMakeLists.txt tools/build_interfaces.py $(wildcard msg/*.msg action/*.action)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python tools/build_interfaces.py
	@touch $@

lint: venv
	$(BIN)/ruff check .

# Coverage counts the subprocesses too (pyproject.toml); the total is printed last.
test: venv lint
	COVERAGE_FILE=$(CURDIR)/.coverage $(BIN)/python -m pytest --cov --cov-report=
	COVERAGE_FILE=$(CURDIR)/.coverage $(BIN)/python -m coverage report --skip-covered --sort=cover | sed -n 1,22p
	@echo "total coverage (lines, subprocesses included): $$(COVERAGE_FILE=$(CURDIR)/.coverage $(BIN)/python -m coverage report --format=total)%"

demo: venv
	$(BIN)/vas-ros demo

bench: venv
	$(BIN)/vas-ros bench --out bench $(if $(wildcard bench/gpu_h200.json),--gpu-json bench/gpu_h200.json)

clean-venv:
	rm -rf $(VENV)
