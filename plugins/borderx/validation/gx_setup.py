"""Great Expectations, imported on first use and set up the way borderx validates with it.

Importing GX takes seconds, and Airflow imports plugins while parsing DAGs, so nothing here runs
at import time. Python keeps the imported modules; calling import_gx again costs a lookup.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from typing import Any

# GX fingerprints every batch smaller than this by hashing all of its cells (a third of its time
# on a block), and would materialise the facts frame's null columns to do it. The fingerprint
# only feeds batch markers, which borderx drops (they would also be a hash of the data in every
# result); the benchmark raises it to measure what the fingerprint costs.
FINGERPRINT_BELOW_BYTES = 0


# Modules GX imports when it is imported, for expectations and charts borderx's suites do not use (the KL
# divergence and other distribution expectations, Altair charts): a third of GX's import time. They are loaded
# on first use instead, like any module, so a suite that uses them still works.
DEFERRED_MODULES = frozenset({"scipy.stats", "altair"})


class _DeferredFinder:
    """Finds DEFERRED_MODULES as the standard path finder would, with a loader that runs a module on its
    first attribute access (importlib.util.LazyLoader)."""

    @staticmethod
    def find_spec(name: str, path=None, target=None):
        if name not in DEFERRED_MODULES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def defer_unused_modules() -> None:
    if _DeferredFinder not in sys.meta_path:
        sys.meta_path.insert(0, _DeferredFinder)


def import_gx():
    defer_unused_modules()
    import great_expectations
    import great_expectations.execution_engine.pandas_execution_engine as pandas_engine

    # Registers the gate's expectations, without which suites using them do not load.
    import borderx.validation.gate  # noqa: F401

    pandas_engine.HASH_THRESHOLD = FINGERPRINT_BELOW_BYTES
    return great_expectations


def new_suite(name: str, configs: list) -> Any:
    """A GX suite of these expectation configurations."""
    return import_gx().ExpectationSuite(name=name, expectations=list(configs))
