"""GX is imported without the modules borderx's suites never use, which still load when something uses them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
SUITE = Path(__file__).resolve().parents[2] / "expectations" / "traveller_flows.json"

# A fresh interpreter: the test process may have loaded these modules for other reasons.
PROBE = r"""
import datetime as dt, json, sys, types
from pathlib import Path
from borderx.dev.samples import TRAVELLER_FLOWS_COLUMNS, traveller_flows_rows, write_csv
from borderx.validation import validate_extract

def executed(name):
    module = sys.modules.get(name)
    return module is not None and type(module) is types.ModuleType

tmp = Path(sys.argv[1])
rows = list(traveller_flows_rows(["ZA-BEI"], dt.date(2026, 1, 1), 3))
good = validate_extract(write_csv(tmp / "good.csv", TRAVELLER_FLOWS_COLUMNS, rows), sys.argv[2])
rows[2][2] = "SIDEWAYS"
bad = validate_extract(write_csv(tmp / "bad.csv", TRAVELLER_FLOWS_COLUMNS, rows), sys.argv[2], data_docs_dir=tmp)
seen = {"good": good.success, "bad": bad.success, "executed": [n for n in ("altair", "scipy.stats") if executed(n)]}
import scipy.stats
seen["norm"] = round(float(scipy.stats.norm.cdf(0.0)), 3)
seen["executed_after_use"] = executed("scipy.stats")
print(json.dumps(seen))
"""


def test_validation_runs_without_the_deferred_modules_and_they_load_on_use(tmp_path):
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path), str(SUITE)], capture_output=True, text=True,
                          env={"PYTHONPATH": str(PLUGINS), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["good"] is True and seen["bad"] is False
    assert seen["executed"] == []
    assert seen["norm"] == 0.5 and seen["executed_after_use"] is True
