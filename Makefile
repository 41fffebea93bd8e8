# msmt-rank. Every target runs inside the project runtime (tools/runtime.sh builds it on first use).
RUNTIME   := tools/runtime.sh
PY        := $(RUNTIME) exec python
DEMO_DIR  ?= $(CURDIR)/build/demo
DEMO_ROWS ?= 200000
PYTEST_ARGS ?=
# The suite runs on two pytest-xdist workers, one test module per worker at a time (a module's fixtures are
# made once), in the order tests/conftest.py gives the modules (longest first); TEST_WORKERS=0 runs it in one
# process.
TEST_WORKERS ?= 2

.PHONY: help runtime demo test lock clean-demo

help:
	@echo "make demo     build the runtime (first time ~4 min), generate $(DEMO_ROWS) synthetic impressions, run the pipeline"
	@echo "make test     build the runtime if needed, run the test suite (~15 min on 2 cores; TEST_WORKERS=0: one process)"
	@echo "make runtime  build or check the runtime only"
	@echo "make lock     re-resolve requirements.in into requirements.lock"
	@echo "make bench-perf  Trainer input efficiency + pipeline seconds / peak RSS at 200k, 1M, 5M rows (long; BENCH_ARGS=...)"

runtime:
	@$(RUNTIME) ensure

demo: runtime
	rm -rf "$(DEMO_DIR)"
	$(PY) -m pipeline.cli demo --output "$(DEMO_DIR)" --rows $(DEMO_ROWS)

test: runtime
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder $(PYTEST_ARGS)

# Resolve requirements.in in a scratch venv of the runtime and freeze it into requirements.lock.
lock: runtime
	$(RUNTIME) exec bash -c 'set -e; d=$$(mktemp -d); python3 -m venv $$d; $$d/bin/pip install -q -r requirements.in; \
	  { head -2 requirements.lock; $$d/bin/pip freeze --all | grep -v "^pip==" | sort -f; } > requirements.lock.new; rm -rf $$d'
	mv requirements.lock.new requirements.lock

clean-demo:
	rm -rf "$(DEMO_DIR)"

# Quality benchmark (not part of `make test`): every model tuned with the same budget, then 5 seeds on 1M impressions,
# tested on the next span (docs/benchmarks.md). A few hours on 2 cores; BENCH_ARGS="--rows 200000 --seeds 1" for a look.
BENCH_QUALITY_ARGS ?= --tune --seeds 5
BENCH_ARGS ?=
.PHONY: bench-quality
bench-quality: runtime
	$(PY) bench/quality.py $(BENCH_QUALITY_ARGS) $(BENCH_ARGS)

# Serving benchmark (not part of `make test`): serving_default latency per batch size; batch-scoring rows/s against
# the model alone at 200k and 1M rows (BENCH_ARGS="--zoo all" adds every zoo model, "--sizes ...,5000000" 5M rows).
# Uses the newest model of `make demo` unless BENCH_ARGS="--model DIR"; report in build/bench-serving/report.md.
.PHONY: bench-serving
bench-serving: runtime
	$(PY) bench/serving.py $(BENCH_ARGS)

# Performance benchmark (not part of `make test`): Trainer input-pipeline efficiency (shared_bottom, ple, aem2tl) and
# per-component seconds / peak RSS of `msmt demo` at 200k, 1M, 5M rows; report in build/bench-perf/report.md.
.PHONY: bench-perf
bench-perf: runtime
	$(PY) bench/perf.py $(BENCH_ARGS)
