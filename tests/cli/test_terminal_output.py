"""A hostile file name reaches the terminal as text: read back from a real terminal (tmux), it forges nothing.

The attack as it was tried: an agency drops an extract whose name carries "ESC[2K CR" (clear the line, back to
its start) followed by a summary line of its own, and "ESC]0;...BEL" (set the window title).
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from borderx.cli import main
from borderx.dev import samples
from borderx.dev.demo import prepare_home
from borderx.text import printable

FORGED = "ok: 0 problems, nothing quarantined"
TITLE = "pwned-by-a-file-name"
HOSTILE = f"flows\x1b[2K\r{FORGED}\x1b]0;{TITLE}\x07.csv"


def _hostile_home(root: Path) -> Path:
    """A demo home holding one extract, quarantined for its content, under the hostile name."""
    today = dt.date.today()
    home = prepare_home(root, today)
    rows = list(samples.traveller_flows_rows(["ZA-BEI"], today - dt.timedelta(days=3), 1, seed=7))
    rows[0][2] = "INBOUND"  # outside ENTRY/EXIT: the file is quarantined, and its name reported
    path = samples.write_csv(home.intake / "ZA-DHA" / "traveller_flows" / HOSTILE, samples.TRAVELLER_FLOWS_COLUMNS,
                             rows)
    old = time.time() - 60
    os.utime(path, (old, old))
    return home.root


class Terminal:
    """A tmux server of this test's own, running one command in a pane of fixed size."""

    def __init__(self):
        self.socket = f"bx-{uuid.uuid4().hex[:10]}"

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True,
                              timeout=30).stdout

    def run(self, argv: list[str], timeout: float = 240) -> str:
        """The screen (with its scrollback) once `argv` has ended."""
        done = f"__ended_{uuid.uuid4().hex[:8]}__"
        command = f"{shlex.join(argv)}; echo {done}; sleep 600"
        self.tmux("new-session", "-d", "-x", "200", "-y", "60", "-s", "t", command)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.tmux("capture-pane", "-p", "-J", "-S", "-1000", "-t", "t")
            if done in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{argv[1:3]} did not end within {timeout} s; screen:\n{screen}")

    def title(self) -> str:
        return self.tmux("display-message", "-p", "-t", "t", "#{pane_title}").strip()

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)


@pytest.fixture
def terminal():
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed: run scripts/setup.sh")
    term = Terminal()
    yield term
    term.close()


def _assert_shown_as_text(screen: str, term: Terminal) -> None:
    # Nothing starts a line of its own: the forged line appears only inside the escaped name.
    assert not [line for line in screen.splitlines() if line.lstrip().startswith(FORGED)], screen
    assert term.title() != TITLE
    assert printable(HOSTILE) in screen, screen
    assert "\\x1b[2K\\x0d" in screen and "\\x1b]0;" in screen and "\\x07" in screen


def test_audit_report_table_shows_a_hostile_name_as_text(tmp_path, s3_endpoint, bucket, terminal):
    home = _hostile_home(tmp_path / "home")
    assert main(["run", "--once", "--home", str(home), "--s3-endpoint", s3_endpoint, "--bucket", bucket]) == 1
    screen = terminal.run([sys.executable, "-m", "borderx.cli", "audit", "report", "--home", str(home),
                           "--format", "table"])
    assert "quarantined: 1" in screen
    _assert_shown_as_text(screen, terminal)


def test_run_summary_shows_a_hostile_name_as_text(tmp_path, s3_endpoint, bucket, terminal):
    home = _hostile_home(tmp_path / "home")
    screen = terminal.run([sys.executable, "-m", "borderx.cli", "run", "--once", "--home", str(home),
                           "--s3-endpoint", s3_endpoint, "--bucket", bucket])
    assert "quarantined: 1 file(s)" in screen
    _assert_shown_as_text(screen, terminal)


def test_printable_escapes_every_control_and_keeps_text():
    assert printable("a\x1b[2K\rb\nc\td\x7fe\x9bf") == "a\\x1b[2K\\x0db\\x0ac\\x09d\\x7fe\\x9bf"
    assert printable("invoice\u202egpj.csv\u2066x\u2069") == "invoice\\u202egpj.csv\\u2066x\\u2069"
    # Bytes that are not UTF-8, as os.fsdecode gives them, are shown rather than failing the write.
    assert printable(os.fsdecode(b"caf\xe9.csv")) == "caf\\udce9.csv"
    assert printable("Zürich_données–2026 ✓.csv") == "Zürich_données–2026 ✓.csv"
