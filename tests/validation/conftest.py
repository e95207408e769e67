"""Fixtures of the validation tests."""

from __future__ import annotations

import pytest

from borderx.validation import gx_run


@pytest.fixture
def gx_results(monkeypatch):
    """Every suite result GX returns while the test runs, as GX returned it."""
    kept = []
    real = gx_run.run_gx

    def keep(session, df, suite):
        kept.append(real(session, df, suite))
        return kept[-1]

    monkeypatch.setattr(gx_run, "run_gx", keep)
    return kept
