"""Validate a CSV extract against a Great Expectations suite, in memory that does not grow with it.

Everything this package returns, raises or writes is built from the suite, the file name, counts
and row numbers. Cell values never leave it: they would end up in quarantine reports, logs,
tracebacks and Data Docs pages, and extract data must never appear in any of those.

Suites may use the anonymisation gate's expectations (gate.py); GX registers those when that
module is imported, which happens before any suite is loaded.

How a file of any size is validated (extract.validate_extract):

- The file is read in blocks of about reading.CHUNK_BYTES (pyarrow, every column as text, empty
  cells as nulls). Each block becomes one GX batch (blocks.py), validated with the suite's
  row-level expectations (the column, column-pair and multicolumn map expectations); their
  counts are summed over the blocks (combine.py), row numbers are those of the whole file,
  percentages are over the whole file.
- Table expectations that need only the header and the row count are validated once by GX, on a
  frame of the file's columns and row count that holds no data.
- Uniqueness (of a column, or of a compound key) spans blocks, which a batch cannot see: every
  row's key is reduced to two keyed 64-bit hashes, kept in memory for small files and spilled to
  disk in hash buckets for large ones, and duplicates are found bucket by bucket (uniqueness.py).
- Files of workers.PARALLEL_MIN_BYTES and more are validated by worker processes, each with its
  own GX session (session.py). This process only finds where blocks end (a line break with no
  quote character before it in the block); each worker reads and parses its block itself, and
  this process combines what they return, in file order. From a block holding a quote
  character on, this process parses the rest with pyarrow and hands the workers parsed rows.
- Many small files of one suite (batched.validate_files, which `borderx run` and the exchange DAG's
  one-task pass use): their rows are one GX batch, asked for verdicts only; a passing verdict holds
  for each file, whose counts are its own, and a failing batch is halved until its bad files stand
  alone and are validated by validate_extract, so every file gets the outcome it would get alone.
- A suite with expectations that cannot be combined across blocks (column aggregates such as a
  mean or a distinct-value set, ordered checks such as increasing values) is validated by GX on
  the whole file as one batch, in memory (suite.py plans which expectation runs where).

What GX returns is turned into value-free findings (findings.py) and, on request, a Data Docs
page rendered from a value-free source: at once for a failing file, on first need for a passing
one (datadocs.py).
"""

import logging
import os

# The installed GX (1.24.1) carries no analytics client, but GX releases that do read this
# variable when first imported, so it is set before that import; setdefault leaves an operator's
# explicit choice alone. The context config also sets analytics_enabled=False.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

# Below WARNING, GX logs per-metric chatter and some exception reprs; an exception raised by
# pandas can quote cell values.
logging.getLogger("great_expectations").setLevel(logging.WARNING)

from borderx.validation.datadocs import render_data_docs  # noqa: E402
from borderx.validation.extract import validate_extract  # noqa: E402
from borderx.errors import SuiteError, ValidationRunError  # noqa: E402
from borderx.validation.outcome import MAX_ROWS_REPORTED, FailedExpectation, ValidationOutcome  # noqa: E402
from borderx.validation.session import GxSession, process_session  # noqa: E402
from borderx.validation.suite import load_suite  # noqa: E402

__all__ = [
    "MAX_ROWS_REPORTED",
    "FailedExpectation",
    "GxSession",
    "SuiteError",
    "ValidationOutcome",
    "ValidationRunError",
    "load_suite",
    "process_session",
    "render_data_docs",
    "validate_extract",
]
