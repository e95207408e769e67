# `make demo` and `make test` each set up a fresh machine first (see scripts/setup.sh).
.PHONY: setup demo test

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/borderx demo --home demo-home

# Two workers: the end-to-end tests take turns on one (see tests/conftest.py), everything else shares the other.
test: setup
	.venv/bin/python -m pytest -q -n 2 --dist loadgroup
