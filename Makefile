# Every target sets up what it needs: a fresh Debian machine with Python 3.11 is enough.
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: setup run test lint docs bench results clean

$(STAMP): pyproject.toml
	command -v dot >/dev/null || (apt-get update -qq && apt-get install -y -qq graphviz >/dev/null)
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	# torch 2.13.0 (CPU build) is pinned first so that nothing pulls a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)  ## the main job: train the seed network and draw its graph
	mkdir -p out
	.venv/bin/tapegrad train --plot out/curves.png --boundary out/boundary.png --save out/seed.safetensors
	.venv/bin/tapegrad graph --out out/graph.svg --backward
	@echo "outputs: out/curves.png out/boundary.png out/seed.safetensors out/graph.svg"

lint: $(STAMP)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

test: $(STAMP) lint  ## the whole suite: lint, format, tests
	$(PY) -m pytest -n 2 -q

docs: $(STAMP)
	.venv/bin/sphinx-build -W -b html docs docs/_build/html

bench: $(STAMP)
	.venv/bin/tapegrad bench

# make results: rerun every command of docs/results.md with --json into docs/results/*.json and
# regenerate the page and its figures from them. Reduced settings by default (under an hour on
# 2 cores); FULL=1 runs the seeds' own (20 rounds; seed 000's 5 folds x 100 epochs over the whole
# grid) with the grid searches on JOBS worker processes: make results FULL=1 JOBS=16.
# make results RENDER=1 only regenerates the page from the JSON files already there.
JOBS ?= 1
results: $(STAMP)
	$(PY) docs/results/generate.py $(if $(FULL),--full) $(if $(RENDER),--render) --jobs $(JOBS)

clean:
	rm -rf .venv docs/_build out
