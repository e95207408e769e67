"""Great Expectations, imported on first use and set up the way borderx validates with it.

Importing GX takes seconds, and Airflow imports plugins while parsing DAGs, so nothing here runs
at import time. Python keeps the imported modules; calling import_gx again costs a lookup.
"""

from __future__ import annotations

from typing import Any

# GX fingerprints every batch smaller than this by hashing all of its cells (a third of its time
# on a block), and would materialise the facts frame's null columns to do it. The fingerprint
# only feeds batch markers, which borderx drops (they would also be a hash of the data in every
# result); the benchmark raises it to measure what the fingerprint costs.
FINGERPRINT_BELOW_BYTES = 0


def import_gx():
    import great_expectations
    import great_expectations.execution_engine.pandas_execution_engine as pandas_engine

    # Registers the gate's expectations, without which suites using them do not load.
    import borderx.validation.gate  # noqa: F401

    pandas_engine.HASH_THRESHOLD = FINGERPRINT_BELOW_BYTES
    return great_expectations


def new_suite(name: str, configs: list) -> Any:
    """A GX suite of these expectation configurations."""
    return import_gx().ExpectationSuite(name=name, expectations=list(configs))
