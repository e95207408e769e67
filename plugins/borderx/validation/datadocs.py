"""The Data Docs page of one validation: GX's own page, rendered from a value-free copy.

GX writes some fields into the page as HTML, unescaped (the run name among them), so no name
from outside reaches the page as it is: the run name is the session's (a fixed prefix and a
number), and the file name appears, as the page's file name and its data asset, only reduced to
letters, digits, '.', '_' and '-'.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import os
import re
import uuid
from pathlib import Path
from typing import Any

from borderx.validation.findings import gate_types, raised_exception
from borderx.validation.session import GxSession, process_session
from borderx.validation.suite import domain_columns

_SAFE_RESULT_NUMBERS = (
    "element_count",
    "missing_count",
    "missing_percent",
    "unexpected_count",
    "unexpected_percent",
    "unexpected_percent_total",
    "unexpected_percent_nonmissing",
)


def render_data_docs(
    result: Any,
    out_dir: Path,
    *,
    name: str | None = None,
    known_columns: set[str] | None = None,
    session: GxSession | None = None,
) -> Path:
    """Write the GX Data Docs page of one validation result into out_dir; return its path.

    result is the ExpectationSuiteValidationResult GX returned. The page is rendered by GX's
    ValidationResultsPageRenderer and DefaultJinjaPageView from a copy of it that keeps only
    counts, percentages, row positions and column names the suite itself uses, whatever result
    format produced it. The page is one HTML file: styles are inlined, scripts and fonts come
    from CDNs. It is named "<name>.validation.html", name defaulting to the suite's.
    """
    session = session or process_session()
    return page_of(result, out_dir, name=name, known_columns=known_columns, session=session).write(session)


class Page:
    """A Data Docs page to write: its place, and what it shows, fixed when it is made. The value-free copy of the
    result is made when the page is written, which may be later and in another process (page_writer.py)."""

    def __init__(self, path: Path, result: Any, known_columns: set[str], run_name: str, run_time: str):
        self.path = path
        self._result = result
        self._known_columns = known_columns
        self._run_name = run_name
        self._run_time = run_time

    def write(self, session: GxSession) -> Path:
        safe = value_free_copy(self._result, self._known_columns, run_name=self._run_name,
                               asset=self.path.name.removesuffix(PAGE_SUFFIX), run_time=self._run_time)
        with session.render_lock:
            renderer, view = session.renderers()
            document = renderer.render(safe)
            html = view.render(document, show_how_to_buttons=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.part")
        try:
            partial.write_text(html, encoding="utf-8")
            os.replace(partial, self.path)
        finally:
            partial.unlink(missing_ok=True)
        return self.path


PAGE_SUFFIX = ".validation.html"


def page_of(result: Any, out_dir: Path, *, name: str | None = None, known_columns: set[str] | None = None,
            session: GxSession) -> Page:
    """The page render_data_docs writes, not yet rendered: its name, run name and run time are given now."""
    if known_columns is None:
        known_columns = _columns_named_in_results(result)
    stem = safe_name(name or result.suite_name)
    return Page(Path(out_dir) / f"{stem}{PAGE_SUFFIX}", result, known_columns, session.next_run_name(),
                dt.datetime.now(dt.timezone.utc).isoformat())


# The page's name, and its temporary one, must fit a file name whatever the extract's name.
_STEM_MAX = 128


def safe_name(name: str) -> str:
    """name with every run of characters other than letters, digits, '.', '_' and '-' made one
    '_': no markup, no path, no control character survives; a long one is cut and told apart by a hash."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "validation"
    if len(safe) <= _STEM_MAX:
        return safe
    return f"{safe[:_STEM_MAX - 17]}-{hashlib.sha256(name.encode('utf-8', 'surrogateescape')).hexdigest()[:16]}"


def _columns_named_in_results(result: Any) -> set[str]:
    names: set[str] = set()
    for evr in result.results:
        names.update(domain_columns(evr.expectation_config.kwargs))
    return names


def value_free_copy(result: Any, known_columns: set[str], *, run_name: str, asset: str,
                    run_time: str | None = None) -> Any:
    """A deep copy of a GX suite result reduced to what a report may show, naming the run and
    the data asset as given (both must be safe as HTML)."""
    from great_expectations import __version__ as gx_version

    safe = copy.deepcopy(result)
    for evr in safe.results:
        evr.result = _value_free_result(evr.expectation_config.type, evr.result, known_columns)
        raised = raised_exception(evr.exception_info)
        # GX's exception messages and tracebacks can quote the offending cells.
        evr.exception_info = {
            "raised_exception": raised,
            "exception_message": "not evaluated: error while evaluating" if raised else None,
            # GX's page renders the traceback as text when an exception was raised.
            "exception_traceback": "(withheld: it can quote the data)" if raised else None,
        }
    # The batch meta names a throwaway data source and fingerprints the data; what the page
    # needs from it is which file, which run and when.
    safe.meta = {
        "great_expectations_version": gx_version,
        "run_id": {
            "run_name": run_name,
            "run_time": run_time or dt.datetime.now(dt.timezone.utc).isoformat(),
        },
        "batch_spec": {"data_asset_name": asset},
    }
    return safe


def _value_free_result(expectation_type: str, result: Any, known_columns: set[str]) -> dict:
    if not isinstance(result, dict):
        return {}
    out: dict[str, Any] = {}
    for key in _SAFE_RESULT_NUMBERS:
        value = result.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = value
    indices = result.get("partial_unexpected_index_list")
    if isinstance(indices, list):
        out["partial_unexpected_index_list"] = [
            i for i in indices if isinstance(i, int) and not isinstance(i, bool)
        ]
    observed = _value_free_observed(expectation_type, result.get("observed_value"), known_columns)
    if observed is not None:
        out["observed_value"] = observed
    return out


def _value_free_observed(expectation_type: str, observed: Any, known_columns: set[str]) -> Any:
    if isinstance(observed, (int, float)) and not isinstance(observed, bool):
        return observed
    if not isinstance(observed, (list, tuple)):
        # Anything else (a min, a max, a most common value, details) may be a cell value.
        return None
    if expectation_type in gate_types():
        # The gate's own observed names are vocabulary or positions by construction.
        return [str(o) for o in observed]
    if expectation_type.startswith("expect_table_column"):
        return [
            name if isinstance(name, str) and name in known_columns
            else f"[unrecognised column {i}]"
            for i, name in enumerate(observed, start=1)
        ]
    return None
