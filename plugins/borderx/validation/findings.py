"""Turning GX results into value-free findings: the failed expectations, their rules in words,
and the statistics an outcome carries.

GX's results can quote cell values (observed values, exception messages, unexpected lists, rows
by a named index); only counts, percentages, row positions, and column names the suite itself
uses are taken from them.
"""

from __future__ import annotations

from typing import Any

from borderx.validation.outcome import MAX_ROWS_REPORTED, FailedExpectation
from borderx.validation.suite import config_key, domain_columns, expectation_key

# The meta marker the suites put on the anonymisation gate's expectations.
GATE_META_KEY = "gate"
GATE_META_VALUE = "anonymisation"

_STATISTICS_KEYS = (
    "evaluated_expectations",
    "successful_expectations",
    "unsuccessful_expectations",
    "success_percent",
)


def failures_of(
    result: Any, suite, present_columns: set[str], known_columns: set[str]
) -> list[FailedExpectation]:
    """The failed expectations of a GX suite result, in the suite's order."""
    failed = [evr for evr in result.results if not evr.success]
    if not failed:
        return []
    order = suite_order(suite)
    failures: list[tuple[int, FailedExpectation]] = []
    for evr in failed:
        position = order.get(config_key(evr.expectation_config), len(order))
        found = failure(evr, known_columns, present_columns)
        failures.append((position, found))
    failures.sort(key=lambda item: item[0])
    return [f for _, f in failures]


def is_gate(meta: Any) -> bool:
    return isinstance(meta, dict) and meta.get(GATE_META_KEY) == GATE_META_VALUE


def gate_types() -> frozenset[str]:
    from borderx.validation.gate import GATE_EXPECTATION_TYPES

    return GATE_EXPECTATION_TYPES


def suite_order(suite) -> dict[str, int]:
    order: dict[str, int] = {}
    for index, configuration in enumerate(suite.expectation_configurations):
        order.setdefault(expectation_key(configuration.type, dict(configuration.kwargs)), index)
    return order


def failure(evr: Any, known_columns: set[str], present_columns: set[str]) -> FailedExpectation:
    config = evr.expectation_config
    expectation_type = config.type
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    columns = domain_columns(kwargs)
    result = evr.result or {}
    rows: list[int] = []
    indices = result.get("partial_unexpected_index_list")
    if isinstance(indices, list):
        # Ints only: with a named index GX reports dicts that carry cell values.
        rows = [int(i) + 1 for i in indices if isinstance(i, int) and not isinstance(i, bool)]
        rows = sorted(rows)[:MAX_ROWS_REPORTED]
    return FailedExpectation(
        expectation=expectation_type,
        column=", ".join(columns) if columns else None,
        rule=config.description or rule_text(expectation_type, kwargs),
        unexpected_count=as_int(result.get("unexpected_count")),
        unexpected_percent=as_float(result.get("unexpected_percent")),
        rows=rows,
        observed=_observed(evr, columns, known_columns, present_columns),
        gate=is_gate(config.meta),
    )


def _observed(
    evr: Any, columns: list[str], known_columns: set[str], present_columns: set[str]
) -> str | None:
    expectation_type = evr.expectation_config.type
    result = evr.result or {}
    if raised_exception(evr.exception_info):
        if any(c not in present_columns for c in columns):
            return "not evaluated: column missing from file"
        return "not evaluated: error while evaluating"
    if expectation_type in gate_types() and isinstance(result.get("observed_value"), list):
        # The gate's own observed names are vocabulary or positions by construction.
        return ", ".join(str(o) for o in result["observed_value"]) or None
    if expectation_type.startswith("expect_table_"):
        return observed_table_value(result.get("observed_value"), known_columns)
    return None


def raised_exception(exception_info: Any) -> bool:
    if not isinstance(exception_info, dict):
        return False
    if "raised_exception" in exception_info:
        return bool(exception_info["raised_exception"])
    # Keyed by metric when a metric failed to resolve.
    return any(isinstance(v, dict) and v.get("raised_exception") for v in exception_info.values())


def observed_table_value(value: Any, known_columns: set[str]) -> str | None:
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


def _listed(kwargs: dict, key: str) -> str:
    return ", ".join(str(v) for v in kwargs.get(key) or [])


def _between(kwargs: dict) -> str:
    return _range(kwargs.get("min_value"), kwargs.get("max_value"))


def _identifier_kinds(kwargs: dict) -> str:
    from borderx.validation.gate import KIND_LABELS

    kinds = [KIND_LABELS.get(k, str(k)) for k in kwargs.get("kinds") or []]
    return ", ".join(kinds[:-1]) + " or " + kinds[-1] if len(kinds) > 1 else "".join(kinds)


# The rule of each known expectation type in words, from its arguments.
_RULES = {
    "expect_column_values_to_not_be_null": lambda kw: "values must not be empty",
    "expect_column_values_to_be_in_set":
        lambda kw: f"values must be one of {_listed(kw, 'value_set')}",
    "expect_column_values_to_not_be_in_set":
        lambda kw: f"values must not be any of {_listed(kw, 'value_set')}",
    "expect_column_values_to_match_regex":
        lambda kw: f"values must match the pattern {kw.get('regex')}",
    "expect_column_values_to_not_match_regex":
        lambda kw: f"values must not match the pattern {kw.get('regex')}",
    "expect_column_values_to_be_unique": lambda kw: "values must be unique",
    "expect_compound_columns_to_be_unique":
        lambda kw: f"each combination of {_listed(kw, 'column_list')} must appear only once",
    "expect_table_columns_to_match_ordered_list":
        lambda kw: f"columns must be exactly, in this order: {_listed(kw, 'column_list')}",
    "expect_table_columns_to_match_set": lambda kw: "columns must be " + _listed(kw, "column_set"),
    "expect_table_row_count_to_be_between": lambda kw: "row count must be " + _between(kw),
    "expect_table_row_count_to_equal": lambda kw: f"row count must be {kw.get('value')}",
    "expect_column_values_to_be_between": lambda kw: "values must be " + _between(kw),
    "expect_table_columns_to_not_be_identifiers":
        lambda kw: "anonymisation gate: no column may be named like a direct identifier",
    "expect_column_values_to_not_contain_identifiers":
        lambda kw: "anonymisation gate: values must not contain " + _identifier_kinds(kw),
}


def rule_text(expectation_type: str, kwargs: dict) -> str:
    known = _RULES.get(expectation_type)
    if known is not None:
        rule = known(kwargs)
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


def outcome_statistics(statistics: dict) -> dict:
    out: dict[str, Any] = {}
    for key in _STATISTICS_KEYS:
        value = statistics.get(key)
        if key == "success_percent":
            out[key] = as_float(value)
        else:
            out[key] = as_int(value)
    return out


def as_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def as_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
