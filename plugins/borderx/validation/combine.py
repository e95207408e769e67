"""What the blocks of one file add up to: counts summed in file order, duplicates found across
blocks, and GX results made from them with GX's own arithmetic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from borderx.validation.blocks import ChunkResult, Tally
from borderx.validation.gx_run import suite_statistics
from borderx.validation.outcome import MAX_ROWS_REPORTED
from borderx.validation.reading import ReadFailed
from borderx.validation.suite import Entry, Plan
from borderx.validation.uniqueness import DuplicateFinder


@dataclass
class FileRun:
    result: Any  # an ExpectationSuiteValidationResult combined over the blocks
    rows: int
    columns: list[str]


class Combined:
    """The blocks of one file absorbed so far, in file order; close() removes spilled keys."""

    def __init__(self, unique_keys: list[str], bucket_bits: int):
        self.rows = 0
        self.tallies: dict[str, Tally] = {}
        self.finders = {key: DuplicateFinder(bucket_bits) for key in unique_keys}

    def absorb(self, part: ChunkResult) -> None:
        import numpy as np

        if part.read_error is not None:
            raise ReadFailed(*part.read_error)
        for key, tally in part.tallies.items():
            tally.rows = [self.rows + r for r in tally.rows]
            self.tallies.setdefault(key, Tally()).add(tally)
        for key, (bounds, h1, h2, where) in part.hashes.items():
            self.finders[key].add((bounds, h1, h2, where + np.uint64(self.rows)))
        self.rows += part.rows

    def unique_result(self, entry: Entry):
        finder = self.finders[entry.key]
        count, first = finder.duplicates()
        tally = Tally(
            elements=self.rows, missing=self.rows - finder.considered, unexpected=count, rows=first
        )
        return map_result(entry, tally)

    def close(self) -> None:
        for finder in self.finders.values():
            finder.close()


def map_result(entry: Entry, tally: Tally):
    """GX's result for a map expectation, from counts over the whole file (GX's own arithmetic)."""
    from great_expectations.core.expectation_validation_result import ExpectationValidationResult

    if tally.raised:
        return not_evaluated(entry)
    elements, unexpected, missing = tally.elements, tally.unexpected, tally.missing
    considered = elements - missing if missing is not None else elements
    if elements == 0 or considered == 0:
        success = True
    else:
        success = (considered - unexpected) / considered >= entry.mostly
    percent = percent_total = missing_percent = None
    if elements > 0:
        percent_total = unexpected / elements * 100
        if missing is not None:
            missing_percent = missing / elements * 100
            percent = unexpected / considered * 100 if considered > 0 else None
        else:
            percent = percent_total
    result: dict[str, Any] = {
        "element_count": elements,
        "unexpected_count": unexpected,
        "unexpected_percent": percent,
        "partial_unexpected_index_list": sorted(tally.rows)[:MAX_ROWS_REPORTED],
    }
    if missing is not None:
        result.update(
            missing_count=missing,
            missing_percent=missing_percent,
            unexpected_percent_total=percent_total,
            unexpected_percent_nonmissing=percent,
        )
    return ExpectationValidationResult(
        success=success,
        expectation_config=entry.config,
        result=result,
        exception_info={
            "raised_exception": False,
            "exception_message": None,
            "exception_traceback": None,
        },
    )


def not_evaluated(entry: Entry):
    from great_expectations.core.expectation_validation_result import ExpectationValidationResult

    return ExpectationValidationResult(
        success=False,
        expectation_config=entry.config,
        result={},
        exception_info={
            "raised_exception": True,
            "exception_message": "not evaluated",
            "exception_traceback": None,
        },
    )


def suite_result(plan: Plan, results: dict[str, Any]):
    """The suite's result, its expectations in the suite's order, from results by key."""
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
    )

    ordered = [results[entry.key] for entry in plan.entries]
    successful = sum(1 for r in ordered if r.success)
    return ExpectationSuiteValidationResult(
        success=successful == len(ordered),
        results=ordered,
        suite_name=plan.name,
        statistics=suite_statistics(successful, len(ordered)),
        meta={},
    )
