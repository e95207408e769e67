"""The auditor's page: the app on its own, then inside a real Airflow API server, rendered by a real browser."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from airflow_procs import REPO, free_port
from borderx.audit import report as audit_report
from borderx.audit.trail import AuditTrail, canonical
from borderx.airflow.web import create_app
from borderx.crypto import sshsig
from borderx.cli import main
from borderx.exchange import run_once
from borderx.validation.datadocs import MAX_SOURCE_BYTES, page_html, source_of

AIRFLOW = Path(sys.executable).with_name("airflow")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WINDOW = (1280, 900)
INTACT_GREEN = (0x1A, 0x7F, 0x37)


@pytest.fixture
def exchanged(runtime, monkeypatch):
    """A demo home after one exchange: deliveries, quarantines and one signed head, in the bucket the
    environment names to the page (and to the API servers started below)."""
    monkeypatch.setenv("BORDERX_S3_ENDPOINT_URL", runtime.target.endpoint_url)
    monkeypatch.setenv("BORDERX_BUCKET", runtime.target.bucket)
    summary = run_once(runtime, settle_seconds=0)
    assert summary.published and summary.quarantined
    return runtime


DOCS_HREF = r'class="bx-docs" href="([^"]*)"'


def _same_but_times(html: str) -> str:
    """A page as GX renders it again: its element ids and its logo's cache-busting query aside."""
    html = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "U", html)
    return re.sub(r"\?d=\d{8}T\d{6}\.\d+Z", "?d=D", html)


def _unlinked(page: str) -> str:
    return re.sub(DOCS_HREF, 'class="bx-docs" href=""', page)


def _tamper(trail: AuditTrail, line: int) -> None:
    lines = trail.path.read_text(encoding="utf-8").splitlines()
    event = json.loads(lines[line - 1])
    event["details"]["tampered"] = True
    lines[line - 1] = canonical(event).decode()
    trail.path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# -- the app on its own ---------------------------------------------------------------------------


def test_report_json_is_the_audit_report_and_the_trail_is_intact(exchanged):
    client = TestClient(create_app(str(exchanged.home.root)))
    events = list(exchanged.trail.events())
    assert client.get("/api/report").json() == json.loads(audit_report.as_json(audit_report.build(events)))
    recipient = "BW-BURS"
    filtered = client.get("/api/report", params={"recipient": recipient, "from": "", "to": ""}).json()
    assert filtered == audit_report.build(events, recipient=recipient).to_dict()
    assert [l["recipient"] for l in filtered["lines"]] == [recipient]

    verdict = client.get("/api/verify").json()
    assert {k: verdict[k] for k in ("intact", "events", "heads", "broken", "error", "problems")} == {
        "intact": True, "events": len(events), "heads": 1, "broken": None, "error": None, "problems": []}
    hub_key = sshsig.fingerprint(exchanged.config.settings.hub.signing_public_key)
    assert verdict["checked"]["bucket"] == f"s3://{exchanged.target.bucket}"
    assert verdict["checked"]["hub_key"] == hub_key
    page = client.get("/").text
    assert f"Checked against s3://{exchanged.target.bucket}" in page and hub_key in page


def test_never_green_without_a_signed_head_in_the_bucket(exchanged, s3):
    client = TestClient(create_app(str(exchanged.home.root)))
    for key in [o["Key"] for o in s3.list_objects_v2(Bucket=exchanged.target.bucket,
                                                      Prefix="audit/").get("Contents", [])]:
        s3.delete_object(Bucket=exchanged.target.bucket, Key=key)
    verdict = client.get("/api/verify").json()
    assert verdict["intact"] is False and verdict["heads"] == 0 and "nothing anchors the trail" in verdict["error"]
    page = client.get("/").text
    assert 'class="bx-verdict bx-broken"' in page and 'class="bx-verdict bx-intact"' not in page


def test_page_is_the_command_lines_report_with_the_verdict(exchanged, capsys):
    client = TestClient(create_app(str(exchanged.home.root)))
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'self'" in page.headers["content-security-policy"]
    assert main(["audit", "report", "--home", str(exchanged.home.root), "--format", "html"]) == 0
    cli = capsys.readouterr().out
    # The same report; only where its Data Docs links point differs (file:// there, served pages here).
    assert _unlinked(cli[cli.index("<h1>"):cli.index("</body>")]) in _unlinked(page.text)
    assert re.findall(DOCS_HREF, page.text) and all(h.startswith("docs/") for h in re.findall(DOCS_HREF, page.text))
    assert 'class="bx-verdict bx-intact"' in page.text and "Audit trail intact" in page.text

    report = audit_report.build(exchanged.trail.events())
    delivery = report.lines[0].delivery_ids[0]
    assert f'href="delivery/{delivery}"' in page.text
    trace = client.get(f"/delivery/{delivery}")
    assert trace.status_code == 200
    for e in audit_report.trace(exchanged.trail.events(), delivery):
        assert f"<td>{e['seq']}</td>" in trace.text
    for step in ("received", "validated", "minimised", "encrypted", "signed", "published"):
        assert f"<td>{step}</td>" in trace.text
    assert client.get("/delivery/" + "0" * 32).status_code == 404


def test_every_validation_links_its_data_docs_served_by_the_app(exchanged):
    client = TestClient(create_app(str(exchanged.home.root)))
    report = audit_report.build(exchanged.trail.events())
    links = re.findall(DOCS_HREF, client.get("/").text)
    assert len(links) == len(report.validations) + len(report.quarantines)
    assert {link.removeprefix("docs/") for link in links} == {
        str(Path(p).relative_to(exchanged.home.root)) for p in report.data_docs()}
    for link in set(links):
        served = client.get("/" + link)
        assert served.status_code == 200 and served.headers["content-type"].startswith("text/html")
        csp = served.headers["content-security-policy"]
        assert "sandbox" in csp and "default-src 'none'" in csp and "script-src" not in csp
        assert "Expectation Validation Result" in served.text
        page = exchanged.home.root / link.removeprefix("docs/")
        if link.startswith("docs/datadocs/"):
            # A passing file's page, rendered from its source when asked for; the app writes nothing.
            assert source_of(page).is_file() and not page.exists()
            assert _same_but_times(served.text) == _same_but_times(page_html(page))
        else:
            assert served.text == page.read_text(encoding="utf-8")

    delivery = report.lines[0].delivery_ids[0]
    [own] = re.findall(DOCS_HREF, client.get(f"/delivery/{delivery}").text)
    assert own.startswith("../docs/datadocs/") and client.get(f"/delivery/{own}").status_code == 200


def test_only_data_docs_the_trail_names_are_served(exchanged, tmp_path):
    client = TestClient(create_app(str(exchanged.home.root)))
    home = exchanged.home.root
    named = sorted(str(Path(p).relative_to(home)) for p in audit_report.build(exchanged.trail.events()).data_docs())
    accepted = next(n for n in named if n.startswith("datadocs/"))
    # Something an agency could place in quarantine by naming its file so, which no validation wrote.
    planted = exchanged.home.quarantine / "ZA-DHA" / "traveller_flows" / "planted.csv.validation.html"
    planted.write_text("<script>alert(1)</script>")
    planted.with_name("planted.csv.validation.json").write_text(source_of(home / accepted).read_text())
    secret = tmp_path / "outside.validation.html"
    secret.write_text("not for the web")
    for asked in ("config/settings.yaml", "audit/trail.jsonl", "datadocs", str(planted.relative_to(home)),
                  accepted.replace("datadocs/", "datadocs/%2E%2E/datadocs/"),
                  "datadocs/%2E%2E/config/settings.yaml", "quarantine/..%2F..%2Fconfig%2Fsettings.yaml",
                  accepted.removesuffix(".validation.html"), str(source_of(accepted)), "%2Fetc%2Fpasswd", str(secret)):
        answer = client.get(f"/docs/{asked}")
        assert answer.status_code == 404, asked
        assert "alert(1)" not in answer.text and "not for the web" not in answer.text
    # A named page's source replaced by a link to one outside the Data Docs folders is refused too, and a page
    # rendered from its source is served in its stead.
    page = home / accepted
    outside = tmp_path / "outside.validation.json"
    shutil.copyfile(source_of(page), outside)
    source_of(page).unlink()
    source_of(page).symlink_to(outside)
    assert client.get(f"/docs/{accepted}").status_code == 404
    page.symlink_to(secret)
    assert client.get(f"/docs/{accepted}").status_code == 404
    assert "<script>" not in client.get("/docs/<script>x.validation.html").text


def test_a_page_whose_source_was_altered_is_a_clear_error(exchanged):
    client = TestClient(create_app(str(exchanged.home.root)))
    home = exchanged.home.root
    named = sorted(str(Path(p).relative_to(home)) for p in audit_report.build(exchanged.trail.events()).data_docs())
    accepted = [n for n in named if n.startswith("datadocs/")]
    assert len(accepted) >= 3
    sources = [source_of(home / n) for n in accepted[:2]]
    sources[0].write_bytes(b" " * (MAX_SOURCE_BYTES + 1))
    altered = json.loads(sources[1].read_text(encoding="utf-8"))
    altered["run_name"] = "<script>alert(1)</script>"
    sources[1].write_text(json.dumps(altered), encoding="utf-8")
    for n, source in zip(accepted, sources):
        answer = client.get(f"/docs/{n}")
        assert answer.status_code == 500 and answer.headers["content-security-policy"].startswith("default-src")
        assert f"{source.name}: " in answer.text and "<script>alert" not in answer.text
    assert client.get(f"/docs/{accepted[-1]}").status_code == 200, "the other pages are served"


def test_filters_are_checked_and_escaped(exchanged):
    client = TestClient(create_app(str(exchanged.home.root)))
    hostile = '"><script>alert(1)</script>'
    page = client.get("/", params={"agreement": hostile})
    assert page.status_code == 200
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text
    assert "DSA-2026-001" not in page.text.split("<h2>Deliveries by agreement")[1]
    bad = client.get("/", params={"from": "2026-13-01"})
    assert bad.status_code == 400 and "is not a date" in bad.text
    assert client.get("/api/report", params={"from": "2026-11-30", "to": "2026-11-01"}).status_code == 400
    assert "<script>" not in client.get("/delivery/<script>x").text


def test_a_changed_line_is_named_in_red(exchanged):
    client = TestClient(create_app(str(exchanged.home.root)))
    _tamper(exchanged.trail, 5)
    verdict = client.get("/api/verify").json()
    assert verdict["intact"] is False
    assert verdict["broken"]["line"] == 5 and verdict["broken"]["seq"] == 5
    assert "content changed" in verdict["broken"]["reason"]
    page = client.get("/").text
    assert 'class="bx-verdict bx-broken"' in page and "broken at line 5 (seq 5)" in page
    assert "Audit trail intact" not in page and 'bx-verdict bx-intact' not in page


def test_a_cut_tail_is_caught_by_the_signed_head(exchanged):
    client = TestClient(create_app(str(exchanged.home.root)))
    lines = exchanged.trail.path.read_text(encoding="utf-8").splitlines(keepends=True)
    exchanged.trail.path.write_text("".join(lines[:-3]), encoding="utf-8")
    verdict = client.get("/api/verify").json()
    assert verdict["intact"] is False and verdict["broken"]["seq"] == len(lines)
    assert "tail cut" in verdict["broken"]["reason"]


def test_an_unreadable_line_still_gets_a_page(exchanged):
    client = TestClient(create_app(str(exchanged.home.root)))
    lines = exchanged.trail.path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2] = "{not json\n"
    exchanged.trail.path.write_text("".join(lines), encoding="utf-8")
    page = client.get("/")
    assert page.status_code == 200 and "broken at line 3" in page.text and "line 3 of the audit trail" in page.text
    assert client.get("/api/report").status_code == 409
    assert client.get("/api/verify").json()["broken"]["line"] == 3


def test_home_comes_from_borderx_home(exchanged, monkeypatch):
    monkeypatch.setenv("BORDERX_HOME", str(exchanged.home.root))
    assert TestClient(create_app()).get("/api/verify").json()["intact"] is True


def test_plugin_module_imports_light():
    code = textwrap.dedent("""
        import json, sys
        import airflow.plugins_manager
        import borderx.airflow.plugin as plugin
        heavy = [m for m in ("great_expectations", "pyarrow", "pandas", "boto3", "botocore",
                             "airflow.api_fastapi.core_api.security") if m in sys.modules]
        print(json.dumps({"heavy": heavy, "name": plugin.BorderxPlugin.name,
                          "apps": [a["url_prefix"] for a in plugin.BorderxPlugin.fastapi_apps],
                          "views": plugin.BorderxPlugin.external_views}))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME", "/nonexistent")})
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["heavy"] == [], facts
    assert facts["name"] == "borderx" and facts["apps"] == ["/borderx"]
    assert facts["views"][0]["url_route"] and not facts["views"][0]["href"].startswith("/")


# -- inside Airflow, in a browser -----------------------------------------------------------------


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _stop(proc: subprocess.Popen) -> None:
    """Ends the process, its group and anything it spawned outside the group (servers re-group)."""
    stragglers = _descendants(proc.pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        for pid in stragglers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            continue
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in stragglers):
            time.sleep(0.1)
        if not any(Path(f"/proc/{p}").exists() for p in stragglers):
            return


@contextlib.contextmanager
def _started(cmd: list[str], env: dict, log: Path, stdout: Path | None = None):
    with open(log, "wb") as err, open(stdout, "wb") if stdout else contextlib.nullcontext() as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out or err, stderr=err if out else subprocess.STDOUT,
                                start_new_session=True)
    try:
        yield proc
    finally:
        _stop(proc)


def _airflow_env(home: Path, borderx_home: Path, **extra: str) -> dict:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "BORDERX_HOME": str(borderx_home),
        **extra,
    }


def _get(url: str, headers: dict | None = None, timeout: float = 10) -> tuple[int, dict, bytes]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=timeout) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def _wait_until_serving(proc: subprocess.Popen, base: str, log: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"airflow api-server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
        with contextlib.suppress(OSError):
            if _get(f"{base}/api/v2/monitor/health", timeout=2)[0] == 200:
                return
        time.sleep(0.3)
    pytest.fail(f"airflow api-server not serving after {seconds} s:\n{log.read_text(errors='replace')[-4000:]}")


def _chromium(tmp: Path, name: str, *args: str, timeout: float = 120) -> str:
    """Runs headless Chromium once, in its own profile; returns what it printed (the DOM for --dump-dom)."""
    log, out = tmp / f"chromium-{name}.log", tmp / f"chromium-{name}.out"
    with _started([str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={tmp / f'chromium-{name}'}", *args],
                  dict(os.environ), log, out) as proc:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"chromium {name} did not finish in {timeout} s:\n{log.read_text(errors='replace')[-3000:]}")
    assert proc.returncode == 0, log.read_text(errors="replace")[-3000:]
    return out.read_text(errors="replace")


def _png_rows(path: Path, max_rows: int) -> tuple[int, int, list[bytes], int]:
    """Width, height and the first rows of an 8-bit RGB(A) PNG, unfiltered, with its bytes per pixel."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    bpp = 3 if color == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    rows, prior = [], bytearray(stride)
    for y in range(min(max_rows, height)):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = prior[i], prior[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(line))
        prior = line
    return width, height, rows, bpp


def _colours(rows: list[bytes], bpp: int) -> dict[tuple[int, int, int], int]:
    counts: dict[tuple[int, int, int], int] = {}
    for row in rows:
        for i in range(0, len(row), bpp):
            px = (row[i], row[i + 1], row[i + 2])
            counts[px] = counts.get(px, 0) + 1
    return counts


def test_airflow_serves_the_page_and_a_browser_renders_it(exchanged, tmp_path, migrated_airflow_db):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup.sh (make setup), which installs the chromium package")
    home = exchanged.home.root
    report = audit_report.build(exchanged.trail.events())
    agreements = sorted({line.agreement for line in report.lines})

    # One API server as the demo runs it (every user an admin), one with a real login, side by side.
    open_home, locked_home = tmp_path / "airflow-open", tmp_path / "airflow-locked"
    open_env = _airflow_env(open_home, home, AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True")
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"auditor": "audit-pass"}), encoding="utf-8")
    locked_env = _airflow_env(locked_home, home, AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="False",
                              AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="auditor:viewer",
                              AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords))
    for env in (open_env, locked_env):
        Path(env["AIRFLOW_HOME"], "dags").mkdir(parents=True)
        shutil.copy(migrated_airflow_db, Path(env["AIRFLOW_HOME"]) / "airflow.db")
    started = time.monotonic()
    open_port = locked_port = free_port()
    while locked_port == open_port:
        locked_port = free_port()
    open_url, locked_url = f"http://127.0.0.1:{open_port}", f"http://127.0.0.1:{locked_port}"

    with contextlib.ExitStack() as stack:
        servers = []
        for env, port, name in ((open_env, open_port, "open"), (locked_env, locked_port, "locked")):
            log = tmp_path / f"api-server-{name}.log"
            proc = stack.enter_context(_started([str(AIRFLOW), "api-server", "-H", "127.0.0.1", "-p", str(port),
                                                 "-w", "1"], env, log))
            servers.append((proc, f"http://127.0.0.1:{port}", log))
        for proc, base, log in servers:
            _wait_until_serving(proc, base, log)
        print(f"two api-servers serving: {time.monotonic() - started:.1f} s")

        # Found once, through the package's entry point; the loose copy the plugins folder walk runs stays silent.
        status, _, body = _get(f"{open_url}/api/v2/plugins")
        assert status == 200
        ours = [p for p in json.loads(body)["plugins"] if p["name"] == "borderx"]
        assert len(ours) == 1 and "borderx.airflow.plugin:BorderxPlugin" in ours[0]["source"], ours
        assert [a["url_prefix"] for a in ours[0]["fastapi_apps"]] == ["/borderx"]
        assert ours[0]["external_views"][0]["url_route"] == "borderx-audit"
        status, _, body = _get(f"{open_url}/api/v2/plugins/importErrors")
        assert status == 200
        errors = json.loads(body)["import_errors"]
        assert not [e for e in errors if "airflow_plugin.py" in e["source"]], errors
        # `pip install -e .` leaves plugins/borderx.egg-info beside the dist-info in site-packages, and
        # plugins/ is on sys.path, so the entry point is seen once per copy; Airflow keeps the first.
        copies = [d for d in importlib.metadata.distributions() if d.metadata["Name"] == "borderx"]
        repeats = [e for e in errors if e["error"] == "Plugin 'borderx' already registered, skipping"]
        assert len(repeats) == len(copies) - 1, (errors, [str(getattr(d, "_path", d)) for d in copies])

        status, headers, body = _get(f"{open_url}/borderx/", {"Accept": "text/html"})
        assert status == 200 and headers["content-type"].startswith("text/html")
        page = body.decode()
        assert "Audit trail intact" in page and all(a in page for a in agreements)
        assert json.loads(_get(f"{open_url}/borderx/api/verify")[2])["intact"] is True
        assert json.loads(_get(f"{open_url}/borderx/api/report")[2]) == report.to_dict()

        docs = sorted(set(re.findall(DOCS_HREF, page)))
        assert docs and all(d.startswith("docs/") for d in docs)
        status, headers, body = _get(f"{open_url}/borderx/{docs[0]}", {"Accept": "text/html"})
        assert status == 200 and "sandbox" in headers["content-security-policy"]
        assert b"Expectation Validation Result" in body

        # Airflow authenticates no plugin route itself; the plugin does, with Airflow's own tokens.
        assert _get(f"{locked_url}/borderx/{docs[0]}")[0] == 401
        assert _get(f"{locked_url}/borderx/api/verify")[0] == 401
        status, headers, _ = _get(f"{locked_url}/borderx/?agreement=DSA-2026-001", {"Accept": "text/html"})
        assert status == 307 and headers["location"].startswith("/auth/login?next=")
        assert "borderx" in urllib.request.unquote(headers["location"])
        assert _get(f"{locked_url}/borderx/api/verify", {"Authorization": "Bearer not-a-token"})[0] == 403
        login = urllib.request.Request(f"{locked_url}/auth/token", method="POST",
                                       data=json.dumps({"username": "auditor", "password": "audit-pass"}).encode(),
                                       headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(login, timeout=10) as resp:
            token = json.loads(resp.read())["access_token"]
        status, _, body = _get(f"{locked_url}/borderx/api/verify", {"Authorization": f"Bearer {token}"})
        assert status == 200 and json.loads(body)["intact"] is True
        status, _, body = _get(f"{locked_url}/borderx/", {"Cookie": f"_token={token}", "Accept": "text/html"})
        assert status == 200 and "Audit trail intact" in body.decode()

        # The page in a browser, and the page inside Airflow's own UI through the menu entry's frame.
        shot, framed = tmp_path / "borderx-audit.png", tmp_path / "airflow-ui-borderx-audit.png"
        size = f"--window-size={WINDOW[0]},{WINDOW[1]}"
        started = time.monotonic()
        _chromium(tmp_path, "shot", f"--screenshot={shot}", size, f"{open_url}/borderx/")
        dom = _chromium(tmp_path, "dom", "--dump-dom", size, f"{open_url}/borderx/")
        _chromium(tmp_path, "ui", f"--screenshot={framed}", size, "--virtual-time-budget=15000",
                  f"{open_url}/plugin/borderx-audit")
        docs_dom = _chromium(tmp_path, "docs", "--dump-dom", size, f"{open_url}/borderx/{docs[0]}")
        print(f"chromium, four runs: {time.monotonic() - started:.1f} s; screenshots: {shot} {framed}")

    assert 'class="bx-verdict bx-intact"' in dom and "Audit trail intact" in dom
    assert all(a in dom for a in agreements) and "Deliveries by agreement and recipient" in dom
    assert re.findall(DOCS_HREF, dom) == re.findall(DOCS_HREF, page)
    # GX's page, readable in the sandbox without its scripts: the verdict and the expectations' table.
    assert "Expectation Validation Result" in docs_dom and "Evaluated Expectations" in docs_dom
    for path in (shot, framed):
        width, height, rows, bpp = _png_rows(path, 200)
        assert (width, height) == WINDOW, (path, width, height)
        colours = _colours(rows, bpp)
        assert len(colours) > 20, f"{path} looks blank: {len(colours)} colours"
        white = colours.get((255, 255, 255), 0) / sum(colours.values())
        assert 0.3 < white < 0.99, f"{path}: {white:.0%} white"
        # The verdict banner, in green, near the top of the page, alone or framed in Airflow's UI.
        assert colours.get(INTACT_GREEN, 0) > 10_000, f"{path}: no green verdict banner"
