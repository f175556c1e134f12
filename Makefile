# Two commands on a fresh machine:
#   make repro   set up .venv and run the whole pipeline on the synthetic default
#   make test    set up .venv and run the tests
# The venv's bin goes first on PATH so DVC stage commands (`python stages/...`) use it.

PY ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)

.PHONY: setup repro test bench clean-venv

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

repro: setup
	dvc repro
	onepunch summary   # the full record: dvc metrics show

test: setup
	python -m pytest -q $(PYTEST_ARGS)

bench: setup
	python benchmarks/bench_metadata.py
	python benchmarks/bench_images.py
	python benchmarks/bench_train.py --model cyclegan
	python benchmarks/bench_train.py --model colorizer
	python benchmarks/bench_train.py --model cyclegan --params configs/danbooru2020-gpu.yaml \
		--json benchmarks/results/train-cyclegan-full.json
	python benchmarks/bench_train.py --model colorizer --params configs/danbooru2020-gpu.yaml \
		--json benchmarks/results/train-colorizer-full.json
	python benchmarks/bench_train_matrix.py --sizes 64 --batches 8 --steps 5 --no-end-to-end
	python benchmarks/bench_colorize.py
	python benchmarks/bench_page.py

clean-venv:
	rm -rf $(VENV)
