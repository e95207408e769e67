"""What one process keeps between validations: its GX context and data source, the suites it has
loaded and planned, the suites derived from them, and the Data Docs page renderers.

A GxSession serves one process: a forked worker builds its own (a fork would copy the parent's
context and its lock, perhaps held by another thread). Call sites that cannot be handed one get
the process's own from process_session().
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from borderx.validation.gx_setup import import_gx, new_suite
from borderx.validation.suite import Plan, config_key, load_suite, plan_suite

if TYPE_CHECKING:
    import pandas

# How many of each derived object a session keeps; a long-lived process meets few suites.
_SUITE_FILES_KEPT = 16
_PLANS_KEPT = 32
_SUBSETS_KEPT = 64
_REBUILT_KEPT = 8
_FACTS_KEPT = 256


def _remember(cache: dict, limit: int, key: Any, value: Any) -> Any:
    if len(cache) > limit:
        cache.clear()
    cache[key] = value
    return value


class GxSession:
    """One process's validation state; hand it to validate_extract, or let it use the process's."""

    def __init__(self) -> None:
        # Held while GX runs: one context serves every thread of the process.
        self.lock = threading.Lock()
        self._context = None
        self._batch_definition = None
        # Suites by their file's content: a thousand small files share one suite and plan.
        self._suite_files: dict[tuple[str, str], Any] = {}
        # By id() of the suite they were made from, with that suite, so a reused id misses.
        self._plans: dict[int, tuple[Any, Plan]] = {}
        self._splits: dict[int, tuple[Any, tuple[Any, list]]] = {}
        self._subsets: dict[tuple, Any] = {}
        # Batch suites rebuilt from a plan's JSON, in workers.
        self._rebuilt: dict[str, Any] = {}
        # Results of a suite's table expectations by (plan token, columns, rows): see batched._facts.
        self.facts: dict[tuple, dict] = {}
        self._renderers: tuple[Any, Any] | None = None
        # Held while a page renders: pages may be rendered from several threads (the auditor's app).
        self.render_lock = threading.Lock()
        self._pages = itertools.count(1)
        # Set once worker processes could not be started here (a daemonic process, such as a
        # Celery prefork worker, may not have children): every later file is validated here.
        self.workers_unavailable = False

    # -- suites

    def suite_file(self, path: Path) -> Any:
        """load_suite, once per suite file content."""
        path = Path(path)
        try:
            key = (str(path.resolve()), hashlib.sha256(path.read_bytes()).hexdigest())
        except OSError:
            return load_suite(path)
        suite = self._suite_files.get(key)
        if suite is None:
            suite = _remember(self._suite_files, _SUITE_FILES_KEPT, key, load_suite(path))
        return suite

    def plan(self, suite) -> Plan:
        cached = self._plans.get(id(suite))
        if cached is not None and cached[0] is suite:
            return cached[1]
        plan = plan_suite(suite)
        _remember(self._plans, _PLANS_KEPT, id(suite), (suite, plan))
        return plan

    def split(self, suite) -> tuple[Any, list]:
        """The part of the suite that may run at VERDICT_FORMAT (None if nothing may), and the
        configurations of the rest."""
        cached = self._splits.get(id(suite))
        if cached is not None and cached[0] is suite:
            return cached[1]
        quick_configs, counted = [], []
        for entry in plan_suite(suite).entries:
            (quick_configs if entry.quick else counted).append(entry.config)
        quick = new_suite(suite.name, quick_configs) if quick_configs else None
        split = (quick, counted)
        _remember(self._splits, _PLANS_KEPT, id(suite), (suite, split))
        return split

    def subset(self, name: str, configs: list) -> Any:
        key = (name, tuple(config_key(c) for c in configs))
        suite = self._subsets.get(key)
        if suite is None:
            suite = _remember(self._subsets, _SUBSETS_KEPT, key, new_suite(name, configs))
        return suite

    def rebuilt_suite(self, token: str, name: str, spec: list[dict]) -> Any:
        """The suite of these expectation configurations' JSON, once per token."""
        suite = self._rebuilt.get(token)
        if suite is None:
            from great_expectations.expectations.expectation_configuration import (
                ExpectationConfiguration,
            )

            configs = [ExpectationConfiguration(**d) for d in spec]
            suite = _remember(self._rebuilt, _REBUILT_KEPT, token, new_suite(name, configs))
        return suite

    def remember_facts(self, shape: tuple, results: dict) -> dict:
        return _remember(self.facts, _FACTS_KEPT, shape, results)

    # -- GX itself; callers hold self.lock

    def context(self):
        if self._context is None:
            from great_expectations.data_context.types.base import (
                DataContextConfig,
                InMemoryStoreBackendDefaults,
                ProgressBarsConfig,
            )

            config = DataContextConfig(
                store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
                analytics_enabled=False,
                progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
            )
            self._context = import_gx().get_context(mode="ephemeral", project_config=config)
        return self._context

    def batch_of(self, df: "pandas.DataFrame"):
        """A GX batch of df; release it (gx_run.release) after validating."""
        # One data source for the life of the session: adding and deleting one per batch costs
        # GX about 15 ms, which on a thousand small files is most of a second per hundred.
        if self._batch_definition is None:
            source = self.context().data_sources.add_pandas(f"extracts-{uuid.uuid4().hex}")
            asset = source.add_dataframe_asset("extract")
            self._batch_definition = asset.add_batch_definition_whole_dataframe("whole")
        return self._batch_definition.get_batch(batch_parameters={"dataframe": df})

    # -- Data Docs

    def renderers(self) -> tuple[Any, Any]:
        # A page view owns a Jinja environment, which compiles the page's templates on first use
        # and keeps them: a view per page spent about 250 ms per extract compiling them.
        if self._renderers is None:
            import_gx()
            from great_expectations.render.renderer import ValidationResultsPageRenderer
            from great_expectations.render.view import DefaultJinjaPageView

            self._renderers = (ValidationResultsPageRenderer(), DefaultJinjaPageView())
        return self._renderers

    def next_run_name(self) -> str:
        """The run name a Data Docs page shows. GX writes it into the page as HTML, unescaped,
        so it is made here from a fixed prefix and a number, never from a file name."""
        return f"borderx-validation-{next(self._pages)}"


@functools.lru_cache(maxsize=1)
def _session_of(pid: int) -> GxSession:
    return GxSession()


def process_session() -> GxSession:
    """This process's own session. Keyed by process id, so that a forked child never uses its
    parent's context and lock, but builds its own."""
    return _session_of(os.getpid())
