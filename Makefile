# `make demo` and `make test` each set up a fresh machine first (see scripts/setup.sh).
.PHONY: setup demo test

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/borderx demo --home demo-home

# Four workers on two cores: most tests wait on servers and subprocesses. The end-to-end tests run in two lanes
# (see tests/conftest.py); everything else shares the other workers.
test: setup
	.venv/bin/python -m pytest -q -n 4 --dist loadgroup
