# `make demo` and `make test` each set up a fresh machine first (see scripts/setup.sh).
.PHONY: setup demo test

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/borderx demo --home demo-home

test: setup
	.venv/bin/python -m pytest -q
