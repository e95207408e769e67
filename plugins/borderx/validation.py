"""Validate a CSV extract against a Great Expectations suite.

Everything this module returns, raises or writes is built from the suite, the file name, counts
and row numbers. Cell values never leave it: they would end up in quarantine reports, logs,
tracebacks and Data Docs pages, and extract data must never appear in any of those.

Suites may use the anonymisation gate's expectations (borderx.gate); GX registers those when
the module is imported, which happens before any suite is loaded.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import json
import logging
import os
import re
import threading
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import great_expectations
    import pandas

# The installed GX (1.24.1) carries no analytics client, but GX releases that do read this
# variable when first imported, so it is set before that import; setdefault leaves an operator's
# explicit choice alone. The context config below also sets analytics_enabled=False.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

# Below WARNING, GX logs per-metric chatter and some exception reprs; an exception raised by
# pandas can quote cell values.
logging.getLogger("great_expectations").setLevel(logging.WARNING)

log = logging.getLogger(__name__)

MAX_ROWS_REPORTED = 20

# SUMMARY yields partial_unexpected_index_list (row positions, capped at partial_unexpected_count)
# without the full unexpected_list that COMPLETE carries. exclude_unexpected_values keeps the
# value lists out of the result; include_unexpected_rows and the index query stay off because both
# would carry whole rows.
RESULT_FORMAT: dict[str, Any] = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": MAX_ROWS_REPORTED,
    "exclude_unexpected_values": True,
    "include_unexpected_rows": False,
    "return_unexpected_index_query": False,
}

# The meta marker the suites put on the anonymisation gate's expectations.
GATE_META_KEY = "gate"
GATE_META_VALUE = "anonymisation"

_STATISTICS_KEYS = (
    "evaluated_expectations",
    "successful_expectations",
    "unsuccessful_expectations",
    "success_percent",
)


@dataclass(frozen=True)
class FailedExpectation:
    expectation: str
    column: str | None
    rule: str
    unexpected_count: int | None
    unexpected_percent: float | None
    rows: list[int]
    observed: str | None = None
    # Set for expectations the suite marks meta {"gate": "anonymisation"}; last and defaulted so
    # that positional construction keeps working.
    gate: bool = False


@dataclass(frozen=True)
class ValidationOutcome:
    suite: str
    success: bool
    statistics: dict
    failures: list[FailedExpectation]
    rows: int
    error: str | None = None
    # Path of the Data Docs page written for this validation, when one was asked for.
    data_docs: str | None = None

    def to_dict(self) -> dict:
        return {
            "suite": self.suite,
            "success": self.success,
            "statistics": dict(self.statistics),
            "failures": [asdict(f) for f in self.failures],
            "rows": self.rows,
            "error": self.error,
            "data_docs": self.data_docs,
        }


class SuiteError(Exception):
    """The suite file is missing or is not a usable GX expectation suite."""


class ValidationRunError(RuntimeError):
    """GX itself failed while validating a file that was read successfully."""


# --------------------------------------------------------------------------------------------
# Suite loading


def load_suite(path: Path) -> "great_expectations.ExpectationSuite":
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SuiteError(f"{path}: suite file not found") from None
    except UnicodeDecodeError as exc:
        raise SuiteError(f"{path}: suite file is not valid UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise SuiteError(f"{path}: suite file cannot be read ({exc.strerror or exc})") from None

    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SuiteError(
            f"{path}: suite file is not valid JSON "
            f"({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None

    if not isinstance(data, dict):
        raise SuiteError(f"{path}: suite file must hold a JSON object")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise SuiteError(f"{path}: suite has no name")
    raw_expectations = data.get("expectations")
    if not isinstance(raw_expectations, list):
        raise SuiteError(f"{path}: suite has no list of expectations")

    gx = _gx()
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    # ExpectationSuite() logs and silently drops an expectation it cannot build, which would
    # turn a typo in the suite into a check that never runs; so build each one here first.
    configurations = []
    for number, raw in enumerate(raw_expectations, start=1):
        label = f"expectation {number}"
        if isinstance(raw, dict) and isinstance(raw.get("type"), str):
            label += f" ({raw['type']})"
        if not isinstance(raw, dict) or not isinstance(raw.get("kwargs"), dict):
            raise SuiteError(f"{path}: {label} must be an object with 'type' and 'kwargs'")
        regex = raw["kwargs"].get("regex")
        if isinstance(regex, str):
            try:
                re.compile(regex)
            except re.error as exc:
                raise SuiteError(f"{path}: {label} has an invalid regex ({exc.msg})") from None
        try:
            configuration = ExpectationConfiguration(**raw)
            configuration.to_domain_obj()
        except Exception as exc:
            raise SuiteError(
                f"{path}: {label} is not a valid expectation ({_first_line(exc)})"
            ) from None
        configurations.append(configuration)

    try:
        suite = gx.ExpectationSuite(
            name=name,
            expectations=configurations,
            suite_parameters=data.get("suite_parameters"),
            meta=data.get("meta"),
            notes=data.get("notes"),
            id=data.get("id"),
        )
    except Exception as exc:
        raise SuiteError(f"{path}: not a valid expectation suite ({_first_line(exc)})") from None
    if len(suite.expectations) != len(configurations):
        raise SuiteError(f"{path}: some expectations could not be loaded")
    return suite


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# --------------------------------------------------------------------------------------------
# Reading the extract


class _Unreadable(Exception):
    pass


def _read_extract(csv_path: Path) -> "pandas.DataFrame":
    """Read every cell as raw text, with empty cells as nulls.

    Raises _Unreadable with a message that names the file and the problem and nothing else:
    pandas' and pyarrow's own messages quote the offending line.
    """
    import pandas as pd

    name = str(csv_path)
    try:
        data = Path(csv_path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise _Unreadable(f"{name}: cannot be read ({reason})") from None

    # Decoding up front gives the exact byte offset; pyarrow only names a column.
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise _Unreadable(f"{name}: not valid UTF-8 at byte {exc.start} (line {line})") from None

    if not text.lstrip("\ufeff").strip():
        raise _Unreadable(f"{name}: file is empty (no header row)")
    # pyarrow reports a header with no line ending as an empty file.
    if not data.endswith((b"\n", b"\r")):
        data += b"\n"

    try:
        # The pyarrow engine rejects rows with too few fields as well as too many; the C engine
        # pads short rows with empty cells and, with index_col=False, silently drops extra ones.
        df = pd.read_csv(
            io.BytesIO(data),
            engine="pyarrow",
            dtype=str,
            keep_default_na=False,
            encoding="utf-8",
        )
    except pd.errors.EmptyDataError:
        raise _Unreadable(f"{name}: file is empty (no header row)") from None
    except Exception:
        raise _Unreadable(_describe_malformed(name, text)) from None
    del text

    df = df.reset_index(drop=True)
    return df.replace("", None)


def _describe_malformed(name: str, text: str) -> str:
    """Find the first record whose field count differs from the header's."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), strict=True)
    header_fields: int | None = None
    data_row = 0
    try:
        for record in reader:
            if not record:
                continue
            if header_fields is None:
                header_fields = len(record)
                continue
            data_row += 1
            if len(record) != header_fields:
                return (
                    f"{name}: line {reader.line_num} (data row {data_row}) has {len(record)} "
                    f"fields, header has {header_fields}"
                )
    except csv.Error:
        return (
            f"{name}: malformed CSV at line {reader.line_num} "
            "(unbalanced quotes or stray characters)"
        )
    return f"{name}: not a well-formed CSV file"


# --------------------------------------------------------------------------------------------
# Running GX


_gx_module = None
_context = None
_context_lock = threading.Lock()


def _gx():
    # Imported on first use: importing GX takes seconds, and Airflow imports plugins while
    # parsing DAGs.
    global _gx_module
    if _gx_module is None:
        import great_expectations

        # Registers the gate's expectations, without which suites using them do not load.
        import borderx.gate  # noqa: F401

        _gx_module = great_expectations
    return _gx_module


def _get_context():
    """One ephemeral context per process; callers must hold _context_lock."""
    global _context
    if _context is None:
        gx = _gx()
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
        _context = gx.get_context(mode="ephemeral", project_config=config)
    return _context


def _run_gx(df: "pandas.DataFrame", suite) -> Any:
    with _context_lock:
        context = _get_context()
        # A throwaway data source per run: the execution engine caches the batch it loads, and
        # deleting the data source is what lets the extract's dataframe be freed.
        source_name = f"extract-{uuid.uuid4().hex}"
        source = context.data_sources.add_pandas(source_name)
        try:
            asset = source.add_dataframe_asset("extract")
            batch_definition = asset.add_batch_definition_whole_dataframe("whole")
            batch = batch_definition.get_batch(batch_parameters={"dataframe": df})
            return batch.validate(suite, result_format=RESULT_FORMAT)
        finally:
            context.data_sources.delete(source_name)


def validate_extract(
    csv_path: Path, suite_path: Path, *, data_docs_dir: Path | None = None
) -> ValidationOutcome:
    """Validate one extract; with data_docs_dir, also write the run's Data Docs page there.

    A file that cannot be read as CSV gets no page: GX never ran on it.
    """
    suite = load_suite(suite_path)
    try:
        df = _read_extract(csv_path)
    except _Unreadable as exc:
        return ValidationOutcome(
            suite=suite.name,
            success=False,
            statistics=_statistics(
                {
                    "evaluated_expectations": 0,
                    "successful_expectations": 0,
                    "unsuccessful_expectations": 0,
                }
            ),
            failures=[],
            rows=0,
            error=str(exc),
        )

    try:
        result = _run_gx(df, suite)
    except Exception as exc:
        # The original exception may quote the data; only its type is kept.
        raise ValidationRunError(
            f"{csv_path}: Great Expectations failed while validating ({type(exc).__name__})"
        ) from None

    known_columns = _columns_named_in(suite)
    present_columns = set(df.columns)
    order = _suite_order(suite)
    failures: list[tuple[int, FailedExpectation]] = []
    for evr in result.results:
        if evr.success:
            continue
        config = evr.expectation_config
        kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
        position = order.get(_expectation_key(config.type, kwargs), len(order))
        failure = _failure(
            config.type,
            kwargs,
            config.description,
            evr,
            known_columns,
            present_columns,
            gate=_is_gate(config.meta),
        )
        failures.append((position, failure))
    failures.sort(key=lambda item: item[0])
    rows = len(df)
    del df

    data_docs: str | None = None
    if data_docs_dir is not None:
        try:
            page = render_data_docs(
                result, data_docs_dir, name=Path(csv_path).name, known_columns=known_columns
            )
            data_docs = str(page)
        except Exception as exc:
            # The page is a convenience beside the verdict; failing to write it must not turn
            # into a failed validation, and the exception text may quote data.
            log.warning(
                "%s: Data Docs page not written (%s)", Path(csv_path).name, type(exc).__name__
            )

    return ValidationOutcome(
        suite=suite.name,
        success=bool(result.success),
        statistics=_statistics(result.statistics),
        failures=[f for _, f in failures],
        rows=rows,
        data_docs=data_docs,
    )


def _is_gate(meta: Any) -> bool:
    return isinstance(meta, dict) and meta.get(GATE_META_KEY) == GATE_META_VALUE


# --------------------------------------------------------------------------------------------
# Data Docs

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
) -> Path:
    """Write the GX Data Docs page of one validation result into out_dir; return its path.

    result is the ExpectationSuiteValidationResult GX returned. The page is rendered by GX's
    ValidationResultsPageRenderer and DefaultJinjaPageView from a copy of it that keeps only
    counts, percentages, row positions and column names the suite itself uses, whatever result
    format produced it. The page is one HTML file: styles are inlined, scripts and fonts come
    from CDNs. It is named "<name>.validation.html", name defaulting to the suite's.
    """
    _gx()
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    if known_columns is None:
        known_columns = _columns_named_in_results(result)
    safe = _value_free_copy(result, known_columns, name or result.suite_name)

    document = ValidationResultsPageRenderer().render(safe)
    html = DefaultJinjaPageView().render(document, show_how_to_buttons=False)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name or result.suite_name) or "validation"
    page = out_dir / f"{stem}.validation.html"
    partial = page.with_name(f".{page.name}.{uuid.uuid4().hex}.part")
    try:
        partial.write_text(html, encoding="utf-8")
        os.replace(partial, page)
    finally:
        partial.unlink(missing_ok=True)
    return page


def _columns_named_in_results(result: Any) -> set[str]:
    names: set[str] = set()
    for evr in result.results:
        kwargs = evr.expectation_config.kwargs
        names.update(_domain_columns(kwargs))
    return names


def _value_free_copy(result: Any, known_columns: set[str], run_name: str) -> Any:
    """A deep copy of a GX suite result reduced to what a report may show."""
    from great_expectations import __version__ as gx_version

    safe = copy.deepcopy(result)
    for evr in safe.results:
        evr.result = _value_free_result(evr.expectation_config.type, evr.result, known_columns)
        raised = _raised_exception(evr.exception_info)
        # GX's exception messages and tracebacks can quote the offending cells.
        evr.exception_info = {
            "raised_exception": raised,
            "exception_message": "not evaluated: error while evaluating" if raised else None,
            # GX's page renders the traceback as text when an exception was raised.
            "exception_traceback": "(withheld: it can quote the data)" if raised else None,
        }
    # The batch meta names a throwaway data source and fingerprints the data; what the page
    # needs from it is which file and when.
    safe.meta = {
        "great_expectations_version": gx_version,
        "run_id": {
            "run_name": run_name,
            "run_time": dt.datetime.now(dt.timezone.utc).isoformat(),
        },
        "batch_spec": {"data_asset_name": run_name},
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

    observed = result.get("observed_value")
    if isinstance(observed, (int, float)) and not isinstance(observed, bool):
        out["observed_value"] = observed
    elif isinstance(observed, (list, tuple)):
        if expectation_type in _gate_types():
            # The gate's own observed names are vocabulary or positions by construction.
            out["observed_value"] = [str(o) for o in observed]
        elif expectation_type.startswith("expect_table_column"):
            out["observed_value"] = [
                name if isinstance(name, str) and name in known_columns
                else f"[unrecognised column {i}]"
                for i, name in enumerate(observed, start=1)
            ]
    # Anything else (a min, a max, a most common value, details) may be a cell value.
    return out


def _gate_types() -> frozenset[str]:
    from borderx.gate import GATE_EXPECTATION_TYPES

    return GATE_EXPECTATION_TYPES


# --------------------------------------------------------------------------------------------
# Turning GX results into value-free failures


def _expectation_key(expectation_type: str, kwargs: dict) -> str:
    return json.dumps([expectation_type, kwargs], sort_keys=True, default=str)


def _suite_order(suite) -> dict[str, int]:
    order: dict[str, int] = {}
    for index, configuration in enumerate(suite.expectation_configurations):
        order.setdefault(_expectation_key(configuration.type, dict(configuration.kwargs)), index)
    return order


def _columns_named_in(suite) -> set[str]:
    names: set[str] = set()
    for configuration in suite.expectation_configurations:
        kwargs = configuration.kwargs
        for key in ("column", "column_A", "column_B"):
            if isinstance(kwargs.get(key), str):
                names.add(kwargs[key])
        for key in ("column_list", "column_set"):
            if isinstance(kwargs.get(key), (list, tuple, set)):
                names.update(c for c in kwargs[key] if isinstance(c, str))
    return names


def _domain_columns(kwargs: dict) -> list[str]:
    if isinstance(kwargs.get("column"), str):
        return [kwargs["column"]]
    if isinstance(kwargs.get("column_A"), str) and isinstance(kwargs.get("column_B"), str):
        return [kwargs["column_A"], kwargs["column_B"]]
    for key in ("column_list", "column_set"):
        if isinstance(kwargs.get(key), (list, tuple, set)):
            return [str(c) for c in kwargs[key]]
    return []


def _failure(
    expectation_type: str,
    kwargs: dict,
    description: str | None,
    evr: Any,
    known_columns: set[str],
    present_columns: set[str],
    gate: bool = False,
) -> FailedExpectation:
    columns = _domain_columns(kwargs)
    result = evr.result or {}
    raised = _raised_exception(evr.exception_info)

    observed: str | None = None
    if raised:
        if any(c not in present_columns for c in columns):
            observed = "not evaluated: column missing from file"
        else:
            observed = "not evaluated: error while evaluating"
    elif expectation_type in _gate_types() and isinstance(result.get("observed_value"), list):
        # The gate's own observed names are vocabulary or positions by construction.
        observed = ", ".join(str(o) for o in result["observed_value"]) or None
    elif expectation_type.startswith("expect_table_"):
        observed = _observed_table_value(result.get("observed_value"), known_columns)

    rows: list[int] = []
    indices = result.get("partial_unexpected_index_list")
    if isinstance(indices, list):
        # Ints only: with a named index GX reports dicts that carry cell values.
        rows = [int(i) + 1 for i in indices if isinstance(i, int) and not isinstance(i, bool)]
        rows = sorted(rows)[:MAX_ROWS_REPORTED]

    return FailedExpectation(
        expectation=expectation_type,
        column=", ".join(columns) if columns else None,
        rule=description or _rule(expectation_type, kwargs),
        unexpected_count=_as_int(result.get("unexpected_count")),
        unexpected_percent=_as_float(result.get("unexpected_percent")),
        rows=rows,
        observed=observed,
        gate=gate,
    )


def _raised_exception(exception_info: Any) -> bool:
    if not isinstance(exception_info, dict):
        return False
    if "raised_exception" in exception_info:
        return bool(exception_info["raised_exception"])
    # Keyed by metric when a metric failed to resolve.
    return any(isinstance(v, dict) and v.get("raised_exception") for v in exception_info.values())


def _observed_table_value(value: Any, known_columns: set[str]) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        # A file without its header row has its first data row read as column names, so only
        # names the suite itself uses are shown.
        return ", ".join(
            name if isinstance(name, str) and name in known_columns
            else f"[unrecognised column {i}]"
            for i, name in enumerate(value, start=1)
        )
    return None


def _rule(expectation_type: str, kwargs: dict) -> str:
    column_list = ", ".join(str(c) for c in kwargs.get("column_list") or [])
    value_set = ", ".join(str(v) for v in kwargs.get("value_set") or [])
    if expectation_type == "expect_column_values_to_not_be_null":
        rule = "values must not be empty"
    elif expectation_type == "expect_column_values_to_be_in_set":
        rule = f"values must be one of {value_set}"
    elif expectation_type == "expect_column_values_to_not_be_in_set":
        rule = f"values must not be any of {value_set}"
    elif expectation_type == "expect_column_values_to_match_regex":
        rule = f"values must match the pattern {kwargs.get('regex')}"
    elif expectation_type == "expect_column_values_to_not_match_regex":
        rule = f"values must not match the pattern {kwargs.get('regex')}"
    elif expectation_type == "expect_column_values_to_be_unique":
        rule = "values must be unique"
    elif expectation_type == "expect_compound_columns_to_be_unique":
        rule = f"each combination of {column_list} must appear only once"
    elif expectation_type == "expect_table_columns_to_match_ordered_list":
        rule = f"columns must be exactly, in this order: {column_list}"
    elif expectation_type == "expect_table_columns_to_match_set":
        rule = "columns must be " + ", ".join(str(c) for c in kwargs.get("column_set") or [])
    elif expectation_type == "expect_table_row_count_to_be_between":
        rule = "row count must be " + _range(kwargs.get("min_value"), kwargs.get("max_value"))
    elif expectation_type == "expect_table_row_count_to_equal":
        rule = f"row count must be {kwargs.get('value')}"
    elif expectation_type == "expect_column_values_to_be_between":
        rule = "values must be " + _range(kwargs.get("min_value"), kwargs.get("max_value"))
    elif expectation_type == "expect_table_columns_to_not_be_identifiers":
        rule = "anonymisation gate: no column may be named like a direct identifier"
    elif expectation_type == "expect_column_values_to_not_contain_identifiers":
        from borderx.gate import KIND_LABELS

        kinds = [KIND_LABELS.get(k, str(k)) for k in kwargs.get("kinds") or []]
        rule = "anonymisation gate: values must not contain " + (
            ", ".join(kinds[:-1]) + " or " + kinds[-1] if len(kinds) > 1 else "".join(kinds)
        )
    else:
        shown = {k: v for k, v in kwargs.items() if k not in ("column", "column_list", "mostly")}
        details = ", ".join(f"{k}={v}" for k, v in sorted(shown.items()))
        rule = expectation_type.replace("_", " ") + (f" ({details})" if details else "")

    mostly = kwargs.get("mostly")
    if isinstance(mostly, (int, float)) and mostly < 1:
        rule += f" in at least {mostly:.0%} of rows"
    return rule


def _range(low: Any, high: Any) -> str:
    if low is not None and high is not None:
        return f"between {low} and {high}"
    if low is not None:
        return f"at least {low}"
    if high is not None:
        return f"at most {high}"
    return "any value"


def _statistics(statistics: dict) -> dict:
    out: dict[str, Any] = {}
    for key in _STATISTICS_KEYS:
        value = statistics.get(key)
        if key == "success_percent":
            out[key] = _as_float(value)
        else:
            out[key] = _as_int(value)
    return out


def _as_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _as_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
