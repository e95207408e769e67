"""What a validation returns: counts, row numbers and rules, never a cell value."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Row numbers kept per failed expectation, in outcomes, reports and Data Docs pages.
MAX_ROWS_REPORTED = 20


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
