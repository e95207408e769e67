"""Expectation suites: loading one from its file, and planning where each expectation is validated.

A suite's expectations are validated in one of four ways (see Entry.kind): per block with counts
summed over the file ("map"), once on a frame of the file's columns and row count ("facts"),
by hashed keys across blocks ("unique"), or, when any expectation cannot be combined across
blocks, the whole suite on the whole file at once ("whole").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from borderx.validation.gx_setup import import_gx
from borderx.errors import SuiteError

if TYPE_CHECKING:
    import great_expectations


def load_suite(path: Path) -> "great_expectations.ExpectationSuite":
    path = Path(path)
    data = _suite_json(path)
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise SuiteError(f"{path}: suite has no name")
    raw_expectations = data.get("expectations")
    if not isinstance(raw_expectations, list):
        raise SuiteError(f"{path}: suite has no list of expectations")

    gx = import_gx()
    # ExpectationSuite() logs and silently drops an expectation it cannot build, which would
    # turn a typo in the suite into a check that never runs; so build each one here first.
    configurations = [
        _configuration(path, number, raw) for number, raw in enumerate(raw_expectations, start=1)
    ]
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
        raise SuiteError(f"{path}: not a valid expectation suite ({first_line(exc)})") from None
    if len(suite.expectations) != len(configurations):
        raise SuiteError(f"{path}: some expectations could not be loaded")
    return suite


def _suite_json(path: Path) -> dict:
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
    return data


def _configuration(path: Path, number: int, raw: Any):
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

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
        raise SuiteError(f"{path}: {label} is not a valid expectation ({first_line(exc)})") from None
    return configuration


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# --------------------------------------------------------------------------------------------
# What an expectation is about


def expectation_key(expectation_type: str, kwargs: dict) -> str:
    """One expectation's identity within a suite: its type and arguments."""
    return json.dumps([expectation_type, kwargs], sort_keys=True, default=str)


def config_key(config) -> str:
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    return expectation_key(config.type, kwargs)


def domain_columns(kwargs: dict) -> list[str]:
    """The columns one expectation checks."""
    if isinstance(kwargs.get("column"), str):
        return [kwargs["column"]]
    if isinstance(kwargs.get("column_A"), str) and isinstance(kwargs.get("column_B"), str):
        return [kwargs["column_A"], kwargs["column_B"]]
    for key in ("column_list", "column_set"):
        if isinstance(kwargs.get(key), (list, tuple, set)):
            return [str(c) for c in kwargs[key]]
    return []


def columns_named_in(suite) -> set[str]:
    """Every column name the suite itself uses: the only names a report may show."""
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


# --------------------------------------------------------------------------------------------
# Which expectation is validated where

# Map expectations whose verdict on a row depends on the rows around it.
_ORDER_DEPENDENT = frozenset(
    {"expect_column_values_to_be_increasing", "expect_column_values_to_be_decreasing"}
)
_UNIQUENESS = frozenset(
    {"expect_compound_columns_to_be_unique", "expect_column_values_to_be_unique"}
)
_FACT_METRICS = frozenset({"table.columns", "table.row_count", "table.column_count"})


@dataclass
class Entry:
    key: str
    config: Any
    # "map": per batch, counts summed; "facts": once, on the facts frame; "unique": hashed keys;
    # "whole": the suite is validated on the whole file at once.
    kind: str
    mostly: float = 1.0
    # For "map": whether a passing verdict from VERDICT_FORMAT is enough, the column whose nulls
    # make its missing_count, and whether GX reports one for it at all.
    quick: bool = False
    column: str | None = None
    counts_missing: bool = True
    # For "unique": the key's columns and which rows with missing values it leaves out.
    columns: tuple[str, ...] = ()
    ignore_row_if: str = "never"


@dataclass
class Plan:
    name: str
    entries: list[Entry]
    whole: bool
    # JSON of the map expectations, which the workers rebuild their batch suite from.
    chunk_spec: list[dict]
    chunk_token: str
    facts: list[Entry]
    unique: list[Entry]
    # One entry per distinct expectation (a suite may repeat one).
    distinct: dict[str, Entry] = field(default_factory=dict)
    chunk_suite: Any = None
    facts_suite: Any = None

    def tallied(self) -> dict[str, tuple[str | None, bool] | None]:
        """The map expectations summed over blocks: key -> (column, whether its nulls count as
        missing) when a passing verdict alone may stand for a pass, else None."""
        return {
            e.key: (e.column, e.counts_missing) if e.quick else None
            for e in self.distinct.values()
            if e.kind == "map"
        }


def plan_suite(suite) -> Plan:
    entries = [_entry(expectation) for expectation in suite.expectations]
    whole = any(e.kind == "whole" for e in entries)
    distinct = {e.key: e for e in entries}
    chunk_entries = [e for e in distinct.values() if whole or e.kind == "map"]
    chunk_spec = [e.config.to_json_dict() for e in chunk_entries]
    token = json.dumps([suite.name, chunk_spec], sort_keys=True, default=str)
    return Plan(
        name=suite.name,
        entries=entries,
        whole=whole,
        chunk_spec=chunk_spec,
        chunk_token=token,
        facts=[] if whole else [e for e in distinct.values() if e.kind == "facts"],
        unique=[] if whole else [e for e in distinct.values() if e.kind == "unique"],
        distinct=distinct,
    )


def _entry(expectation) -> Entry:
    from great_expectations.expectations.core.expect_column_values_to_not_be_null import (
        ExpectColumnValuesToNotBeNull,
    )
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )

    config = expectation.configuration
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    key = expectation_key(config.type, kwargs)
    mostly = getattr(expectation, "mostly", None)
    mostly = 1.0 if mostly is None else float(mostly)
    row_condition = getattr(expectation, "row_condition", None)
    is_map = isinstance(
        expectation, (ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation)
    )
    if config.type in _UNIQUENESS and not row_condition:
        if config.type == "expect_column_values_to_be_unique":
            ignore = "any_value_is_missing"
        else:
            ignore = getattr(expectation, "ignore_row_if", None) or "all_values_are_missing"
        columns = tuple(domain_columns(kwargs))
        return Entry(key, config, "unique", mostly, columns=columns, ignore_row_if=ignore)
    if is_map and config.type not in _ORDER_DEPENDENT and config.type not in _UNIQUENESS:
        generic = type(expectation)._validate is ColumnMapExpectation._validate
        not_null = isinstance(expectation, ExpectColumnValuesToNotBeNull)
        quick = (generic or not_null) and mostly >= 1.0 and not row_condition
        column = kwargs.get("column") if isinstance(kwargs.get("column"), str) else None
        return Entry(
            key, config, "map", mostly, quick=quick, column=column, counts_missing=not not_null
        )
    dependencies = getattr(expectation, "metric_dependencies", None)
    if not is_map and not row_condition and dependencies and set(dependencies) <= _FACT_METRICS:
        return Entry(key, config, "facts", mostly)
    return Entry(key, config, "whole", mostly)
