"""A file's name is data: its Data Docs page, opened from disk in a real browser, runs nothing."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from borderx.dev.samples import TRAVELLER_FLOWS_COLUMNS, traveller_flows_rows, write_csv
from borderx.validation import validate_extract
from borderx.validation.datadocs import ensure_page

SUITE = Path(__file__).resolve().parents[2] / "expectations" / "traveller_flows.json"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HOSTILE = "<img src=x onerror=document.title='pwned'>.csv"


def _dom_after_load(page: Path, profile: Path, timeout: float = 120) -> str:
    """The page's DOM once Chromium has loaded it from disk, scripts and event handlers run."""
    proc = subprocess.Popen(
        [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"chromium did not finish in {timeout} s: {err.decode(errors='replace')[-2000:]}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # its helpers, if any outlived it
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode("utf-8", errors="replace")


def _title(html: str) -> str:
    found = re.search(r"<title>(.*?)</title>", html, re.S)
    assert found, "the page has no title"
    return found.group(1).strip()


@pytest.mark.parametrize("failing", [False, True], ids=["passed", "failed"])
def test_a_file_named_like_markup_runs_no_script_in_its_data_docs_page(tmp_path, failing):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup.sh (make setup), which installs it")
    rows = list(traveller_flows_rows(["ZA-BEI"], dt.date(2026, 1, 1), 2))
    if failing:
        rows[1][5] = "Q"  # sex: not one of F, M, X, UNK
    path = write_csv(tmp_path / "in" / HOSTILE, TRAVELLER_FLOWS_COLUMNS, rows)

    outcome = validate_extract(path, SUITE, data_docs_dir=tmp_path / "docs")
    assert outcome.success is not failing
    page = Path(outcome.data_docs)
    assert page.parent == tmp_path / "docs"
    # A passing file's page is rendered from its source on first need, a failing one's at once.
    assert page.is_file() is failing
    assert ensure_page(page) and page.is_file()
    written = page.read_text(encoding="utf-8")

    dom = _dom_after_load(page, tmp_path / "chromium")
    assert "Data asset" in dom, "Chromium did not render the page"
    assert _title(dom) == _title(written)
    assert "pwned" not in _title(dom)
    assert '<img src="x"' not in dom
    assert "<img src=x" not in written
