# The two set-up commands of README: `make demo` and `make test`. Each prepares the machine first.
.PHONY: demo test check bootstrap bootstrap-dev bench screenshots clean

VENV ?= .venv

demo: bootstrap
	$(VENV)/bin/kapmonitor --demo

test: bootstrap-dev
	scripts/check.sh

check:
	scripts/check.sh

bootstrap:
	scripts/bootstrap.sh

bootstrap-dev:
	scripts/bootstrap.sh --dev

# every benchmark and the 4-h soak (~15 min) → benchmarks/RESULTS.md; BENCH_ARGS=--skip-soak for a quick run
bench: bootstrap-dev
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/python benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
