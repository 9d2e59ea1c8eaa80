# The two commands a newcomer needs: `make demo` (the main job) and `make test`.
# Both create .venv on first use; re-running when nothing changed is a no-op.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.vas_ros_installed

export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST

.PHONY: venv test lint demo bench model model-causal clean-venv

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

# The shipped default model's recipe (vas_ros/shipped/README.md). Stage 1 learns motion on
# the plain look (eight classes); stage 2 fine-tunes it on randomised data with the
# background class, augmented, with calibrated scores; then the test on the holdout
# renderer that training never sees. DEVICE=cuda on a GPU machine (stage 1 takes hours
# on a 2-core CPU, minutes on a GPU).
MODEL_DIR ?= runs/model
DEVICE ?= auto
model: venv
	$(BIN)/vas-ros data synth $(MODEL_DIR)/plain --per-class 40 --seed 0 --splits train,val,test --factors none
	$(BIN)/vas-ros train --model tvn_tiny --data $(MODEL_DIR)/plain --out $(MODEL_DIR)/stage1 --overwrite \
	    --epochs 100 --batch-size 16 --lr 3e-3 --seed 0 --device $(DEVICE) --no-augment --no-calibrate
	$(BIN)/vas-ros data synth $(MODEL_DIR)/data --per-class 40 --seed 0 --splits train,val,test --with-none
	$(BIN)/vas-ros data holdout $(MODEL_DIR)/holdout --per-class 40 --seed 0 --with-none
	$(BIN)/vas-ros train --model tvn_tiny --data $(MODEL_DIR)/data --out $(MODEL_DIR)/run --overwrite \
	    --epochs 40 --batch-size 16 --lr 2e-3 --seed 0 --device $(DEVICE) --cache-dir $(MODEL_DIR)/cache \
	    --init-weights $(MODEL_DIR)/stage1/model.safetensors
	$(BIN)/vas-ros eval $(MODEL_DIR)/run/model.safetensors --data $(MODEL_DIR)/data --split test \
	    --ood $(MODEL_DIR)/holdout --device $(DEVICE) --confusion-png $(MODEL_DIR)/confusion.png

model-causal: venv
	$(BIN)/vas-ros train --model tvn_tiny_causal --data $(MODEL_DIR)/data --out $(MODEL_DIR)/run_causal \
	    --overwrite --epochs 30 --batch-size 16 --lr 2e-3 --seed 0 --device $(DEVICE) \
	    --cache-dir $(MODEL_DIR)/cache --init-weights vas_ros/shipped/tvn_tiny_synth.safetensors
	$(BIN)/vas-ros eval $(MODEL_DIR)/run_causal/model.safetensors --data $(MODEL_DIR)/data --split test \
	    --ood $(MODEL_DIR)/holdout --device $(DEVICE)

clean-venv:
	rm -rf $(VENV)
