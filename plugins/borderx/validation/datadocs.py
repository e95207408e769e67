"""The Data Docs page of one validation: GX's own page, rendered from a value-free source.

A page's source (FILE.validation.json beside where FILE.validation.html goes) holds what the page shows and
nothing else: counts, percentages, row positions, the column names the suite uses, the suite's expectations,
and the run's name, time and data asset. Rendering a page costs more than the rest of a small file's
validation and most pages are never opened, so a passing file gets only its source, and its page is rendered
from it on first need (`ensure_page`, `page_html`); a failing file's page is rendered at once, since its
quarantine report sends the officer to it. Both are rendered by the same steps from the same source.

GX writes some fields into the page as HTML, unescaped. The run name is the session's (a fixed prefix and a
number) and the data asset is the file name reduced to letters, digits, '.', '_' and '-'; a source whose run
name or asset is anything else is refused. The other such fields (the suite's name, an expectation's column
and description, observed column names) are escaped here before GX sees them, so not even a source altered
on disk puts markup into a page.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from borderx.errors import PageSourceError
from borderx.folders import private_folders, replace_private
from borderx.validation.findings import gate_types, raised_exception
from borderx.validation.session import GxSession, process_session
from borderx.validation.suite import domain_columns

log = logging.getLogger(__name__)

PAGE_SUFFIX = ".validation.html"
SOURCE_SUFFIX = ".validation.json"
SOURCE_VERSION = 1
# A suite of a thousand expectations makes a source of a few hundred KiB.
MAX_SOURCE_BYTES = 4 << 20
MAX_RESULTS = 10_000

_SAFE_RESULT_NUMBERS = (
    "element_count",
    "missing_count",
    "missing_percent",
    "unexpected_count",
    "unexpected_percent",
    "unexpected_percent_total",
    "unexpected_percent_nonmissing",
)
# Keyword arguments GX writes into the page unescaped.
_RAW_KWARGS = ("column", "column_A", "column_B")
_RUN_NAME = re.compile(r"borderx-validation-[0-9]{1,19}")
_ASSET = re.compile(r"[A-Za-z0-9._-]{1,128}")
_EXPECTATION_TYPE = re.compile(r"[a-z0-9_]{1,128}")


# -- writing


def render_data_docs(
    result: Any,
    out_dir: Path,
    *,
    name: str | None = None,
    known_columns: set[str] | None = None,
    session: GxSession | None = None,
) -> Path:
    """Renders the GX Data Docs page of one validation result into out_dir now; returns its path.

    result is the ExpectationSuiteValidationResult GX returned. The page is rendered by GX's
    ValidationResultsPageRenderer and DefaultJinjaPageView from the result's value-free source, whatever
    result format produced it. The page is one HTML file: styles are inlined, scripts and fonts come from
    CDNs. It is named "<name>.validation.html", name defaulting to the suite's.
    """
    session = session or process_session()
    page, source = _made(result, out_dir, name, known_columns, session)
    _keep(page, render_source(source, session))
    # The source of an earlier validation of the same content would stand for a page already rendered.
    source_of(page).unlink(missing_ok=True)
    return page


def write_page_source(
    result: Any,
    out_dir: Path,
    *,
    name: str | None = None,
    known_columns: set[str] | None = None,
    session: GxSession | None = None,
) -> Path:
    """Writes the source of the page render_data_docs would write; returns the path the page will have once
    rendered (`ensure_page`). Costs a fraction of a millisecond: no GX renderer runs."""
    session = session or process_session()
    page, source = _made(result, out_dir, name, known_columns, session)
    private_folders(page.parent)
    replace_private(source_of(page), json.dumps(source, separators=(",", ":"), default=_jsonable))
    # A page an earlier validation of the same content left would be shown in place of this one.
    page.unlink(missing_ok=True)
    return page


def _made(result: Any, out_dir: Path, name: str | None, known_columns: set[str] | None,
          session: GxSession) -> tuple[Path, dict]:
    if known_columns is None:
        known_columns = _columns_named_in_results(result)
    stem = safe_name(name or result.suite_name)
    source = page_source(result, known_columns, run_name=session.next_run_name(), asset=stem,
                         run_time=dt.datetime.now(dt.timezone.utc).isoformat())
    return Path(out_dir) / f"{stem}{PAGE_SUFFIX}", source


def source_of(page: str | os.PathLike) -> Path:
    """Where the source of the page at `page` is kept: beside it, FILE.validation.json."""
    page = Path(page)
    if not page.name.endswith(PAGE_SUFFIX):
        raise ValueError(f"{page.name}: not a Data Docs page name")
    return page.with_name(page.name.removesuffix(PAGE_SUFFIX) + SOURCE_SUFFIX)


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


def page_source(result: Any, known_columns: set[str], *, run_name: str, asset: str, run_time: str) -> dict:
    """What the page of a GX suite result shows, as JSON-ready data: counts, percentages, row positions,
    column names the suite uses, the suite's expectations, and the run named as given (both run name and
    asset must be safe as HTML). Built field by field from the result, which is left as it is."""
    results = []
    for evr in result.results:
        config = evr.expectation_config
        results.append({
            "success": evr.success,
            "type": config.type,
            "kwargs": config.kwargs,
            "meta": config.meta,
            "description": config.description,
            "notes": config.notes,
            "result": _value_free_result(config.type, evr.result, known_columns),
            # GX's exception messages and tracebacks can quote the offending cells: only whether one was raised.
            "raised": raised_exception(evr.exception_info),
        })
    return {
        "source_version": SOURCE_VERSION,
        "suite_name": result.suite_name,
        "success": result.success,
        "statistics": _numbers(result.statistics),
        "suite_parameters": result.suite_parameters,
        # The batch meta names a throwaway data source and fingerprints the data; what the page needs from it
        # is which file, which run and when.
        "run_name": run_name,
        "run_time": run_time,
        "asset": asset,
        "results": results,
    }


def _jsonable(value: Any) -> Any:
    from great_expectations.util import convert_to_json_serializable

    return convert_to_json_serializable(value)


def _numbers(values: Any) -> dict:
    if not isinstance(values, dict):
        return {}
    return {k: v for k, v in values.items()
            if isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)}


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


# -- rendering


def ensure_page(page: str | os.PathLike, session: GxSession | None = None) -> bool:
    """Renders the page at `page` from its source if only the source is there, and then removes the source.
    True if the page is there afterwards; raises PageSourceError if its source cannot make a page."""
    page = Path(page)
    if page.is_file():
        return True
    try:
        text = page_html(page, session)
    except FileNotFoundError:
        return page.is_file()  # rendered meanwhile by another process, or never had a source
    _keep(page, text)
    source_of(page).unlink(missing_ok=True)
    return True


def page_html(page: str | os.PathLike, session: GxSession | None = None) -> str:
    """The HTML of the page at `page`: its file, or else rendered from its source (nothing is written).
    Raises FileNotFoundError if neither is there, PageSourceError if the source cannot make a page."""
    page = Path(page)
    try:
        return page.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        pass
    source = source_of(page)
    return render_source(read_source(source), session or process_session(), where=source.name)


def read_source(path: Path) -> dict:
    """The page source at `path`, checked: PageSourceError for one too large, not JSON, or not shaped as
    page_source makes it."""
    with open(path, "rb") as fh:
        data = fh.read(MAX_SOURCE_BYTES + 1)
    if len(data) > MAX_SOURCE_BYTES:
        raise PageSourceError(f"{path.name}: a Data Docs page source larger than {MAX_SOURCE_BYTES} bytes")
    try:
        source = json.loads(data)
    except (ValueError, RecursionError):
        raise PageSourceError(f"{path.name}: a Data Docs page source that is not JSON") from None
    return _checked(source, path.name)


def _checked(source: Any, where: str) -> dict:
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise PageSourceError(f"{where}: not a Data Docs page source ({what})")

    need(isinstance(source, dict) and source.get("source_version") == SOURCE_VERSION, "unknown version")
    need(isinstance(source.get("run_name"), str) and bool(_RUN_NAME.fullmatch(source["run_name"])), "run name")
    need(isinstance(source.get("asset"), str) and bool(_ASSET.fullmatch(source["asset"])), "data asset")
    need(isinstance(source.get("run_time"), str), "run time")
    try:
        dt.datetime.fromisoformat(source["run_time"])
    except ValueError:
        need(False, "run time")
    need(isinstance(source.get("suite_name"), str) and len(source["suite_name"]) <= 1024, "suite name")
    need(isinstance(source.get("success"), bool), "success")
    need(isinstance(source.get("statistics"), dict), "statistics")
    need(isinstance(source.get("suite_parameters"), dict), "suite parameters")
    results = source.get("results")
    need(isinstance(results, list) and len(results) <= MAX_RESULTS, "results")
    for r in results:
        need(isinstance(r, dict), "a result")
        need(isinstance(r.get("type"), str) and bool(_EXPECTATION_TYPE.fullmatch(r["type"])), "expectation type")
        need(isinstance(r.get("kwargs"), dict) and isinstance(r.get("meta"), dict), "expectation")
        need(r.get("success") is None or isinstance(r["success"], bool), "expectation success")
        need(isinstance(r.get("raised"), bool), "expectation exception")
        need(r.get("description") is None or isinstance(r["description"], str), "expectation description")
        need(isinstance(r.get("result"), dict), "expectation result")
    return source


def render_source(source: dict, session: GxSession, *, where: str = "page source") -> str:
    """The page's HTML, rendered by GX from a source as page_source makes it (read_source checks one read)."""
    try:
        result = _gx_result(source)
        with session.render_lock:
            renderer, view = session.renderers()
            return view.render(renderer.render(result), show_how_to_buttons=False)
    except PageSourceError:
        raise
    except Exception as exc:
        # The message could quote what the source holds; its type says enough.
        raise PageSourceError(f"{where}: its Data Docs page cannot be rendered ({type(exc).__name__})") from None


def _gx_result(source: dict) -> Any:
    from great_expectations import __version__ as gx_version
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    known = {c for r in source["results"] for c in domain_columns(r["kwargs"])}
    results = []
    for r in source["results"]:
        kwargs = dict(r["kwargs"])
        for key in _RAW_KWARGS:
            if isinstance(kwargs.get(key), str):
                kwargs[key] = _escaped(kwargs[key])
        config = ExpectationConfiguration(type=r["type"], kwargs=kwargs, meta=r["meta"],
                                          notes=_escaped(r.get("notes")), description=_escaped(r["description"]))
        # Checked again, so that a source altered on disk shows no more than one written here.
        shown = _value_free_result(r["type"], r["result"], known)
        if isinstance(shown.get("observed_value"), list):
            shown["observed_value"] = _escaped(shown["observed_value"])
        raised = r["raised"]
        results.append(ExpectationValidationResult(
            success=r["success"], expectation_config=config, result=shown,
            exception_info={
                "raised_exception": raised,
                "exception_message": "not evaluated: error while evaluating" if raised else None,
                # GX's page renders the traceback as text when an exception was raised.
                "exception_traceback": "(withheld: it can quote the data)" if raised else None,
            }))
    return ExpectationSuiteValidationResult(
        success=source["success"],
        results=results,
        suite_name=_escaped(source["suite_name"]),
        suite_parameters=_escaped(source["suite_parameters"]),
        statistics=_numbers(source["statistics"]),
        meta={
            "great_expectations_version": gx_version,
            "run_id": {"run_name": source["run_name"],
                       "run_time": dt.datetime.fromisoformat(source["run_time"]).isoformat()},
            "batch_spec": {"data_asset_name": source["asset"]},
        },
    )


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return html.escape(value)
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    if isinstance(value, dict):
        return {k: _escaped(v) for k, v in value.items()}
    return value


def _keep(page: Path, text: str) -> None:
    private_folders(page.parent)
    replace_private(page, text)
