"""A local RFC 3161 time-stamping authority on 127.0.0.1, for the demo, `borderx airflow` and the tests.

`make_authority` makes a CA and a TSA certificate (critical extendedKeyUsage = timeStamping) with
`cryptography`; `local_tsa` serves time-stamp requests over HTTP (RFC 3161 section 3.4) and answers each one
with `openssl ts -reply`, so the tokens are OpenSSL's own and `openssl ts -verify` is the reference check.
This authority is for trying borderx on one machine: its key sits on the same disk as the hub's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import os
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# A policy under the documentation arc of the private-enterprise tree, used by nobody else.
DEMO_POLICY = "1.3.6.1.4.1.32473.1.1"
CA_FILE, TSA_CERT_FILE, TSA_KEY_FILE, CONFIG_FILE = "tsa-ca.pem", "tsa.pem", "tsa.key", "tsa.cnf"
QUERY_TYPE, REPLY_TYPE = "application/timestamp-query", "application/timestamp-reply"
# A time-stamp query is a hash and a nonce: a few hundred bytes at most.
MAX_QUERY_BYTES = 8 << 10


@dataclass(frozen=True)
class Authority:
    folder: Path
    policy: str = DEMO_POLICY

    @property
    def ca_certificate(self) -> Path:
        return self.folder / CA_FILE

    @property
    def config(self) -> Path:
        return self.folder / CONFIG_FILE


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "borderx local"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: x509.Name, issuer: x509.Name, public_key, signing_key, *, ca: bool,
                 now: dt.datetime) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                        critical=True)
    else:
        builder = (builder
                   .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True))
    return builder.sign(signing_key, hashes.SHA256())


def make_authority(folder: Path, policy: str = DEMO_POLICY) -> Authority:
    """A CA and a TSA certificate in `folder`; kept as they are if there already, so old tokens stay valid."""
    authority = Authority(Path(folder), policy)
    folder = authority.folder
    if not (folder / TSA_KEY_FILE).exists():
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        now = dt.datetime.now(dt.timezone.utc)
        ca_key, tsa_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca_name = _name("borderx local time-stamping CA")
        ca = _certificate(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True, now=now)
        tsa = _certificate(_name("borderx local TSA"), ca_name, tsa_key.public_key(), ca_key, ca=False, now=now)
        key_file = folder / TSA_KEY_FILE
        key_file.touch(mode=0o600)
        key_file.write_bytes(tsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
        (folder / CA_FILE).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        (folder / TSA_CERT_FILE).write_bytes(tsa.public_bytes(serialization.Encoding.PEM))
        (folder / "serial").write_text("01\n")
    authority.config.write_text(_openssl_config(folder, policy), encoding="utf-8")
    return authority


def _openssl_config(folder: Path, policy: str) -> str:
    return f"""[ tsa ]
default_tsa = local_tsa

[ local_tsa ]
dir = {folder}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/{TSA_CERT_FILE}
certs = $dir/{TSA_CERT_FILE}
signer_key = $dir/{TSA_KEY_FILE}
signer_digest = sha256
default_policy = {policy}
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def reply(authority: Authority, query: bytes) -> bytes:
    """`openssl ts -reply` to one DER time-stamp query; raises ValueError if OpenSSL refuses it."""
    with tempfile.TemporaryDirectory(prefix="borderx-tsa-") as work:
        request, response = Path(work) / "query.tsq", Path(work) / "reply.tsr"
        request.write_bytes(query)
        done = subprocess.run(["openssl", "ts", "-reply", "-config", str(authority.config), "-queryfile",
                               str(request), "-out", str(response)], capture_output=True, text=True, timeout=30)
        if done.returncode != 0 or not response.exists():
            raise ValueError(f"openssl ts -reply refused the query: {done.stderr.strip()[-300:]}")
        return response.read_bytes()


class _Handler(http.server.BaseHTTPRequestHandler):
    authority: Authority
    lock: threading.Lock

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Content-Type") != QUERY_TYPE or not 0 < length <= MAX_QUERY_BYTES:
            self.send_error(400, f"expected a {QUERY_TYPE} body of at most {MAX_QUERY_BYTES} bytes")
            return
        query = self.rfile.read(length)
        try:
            # OpenSSL's serial file is read and rewritten per reply: one at a time.
            with self.lock:
                body = reply(self.authority, query)
        except ValueError:
            self.send_error(400, "not a time-stamp query OpenSSL accepts")
            return
        self.send_response(200)
        self.send_header("Content-Type", REPLY_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass


class _Server(http.server.ThreadingHTTPServer):
    # A TSA stopped and started again on its port (an outage in the tests) binds at once.
    allow_reuse_address = True
    daemon_threads = True


@contextlib.contextmanager
def local_tsa(folder: Path, port: int = 0, policy: str = DEMO_POLICY) -> Iterator[tuple[str, Authority]]:
    """Serves RFC 3161 on 127.0.0.1 for the duration of the block; yields its URL and the authority."""
    authority = make_authority(folder, policy)
    handler = type("Handler", (_Handler,), {"authority": authority, "lock": threading.Lock()})
    server = _Server(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, name="borderx-local-tsa", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/tsa", authority
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextlib.contextmanager
def local_tsa_for_home(home_root: Path) -> Iterator[str]:
    """The local TSA for a home: its CA and key kept in keys/tsa/ (so earlier tokens stay valid across starts),
    the CA at keys/tsa-ca.pem, and the home's settings pointed at it while it runs. Yields its URL."""
    import shutil

    import yaml

    with local_tsa(home_root / "keys" / "tsa") as (url, authority):
        shutil.copyfile(authority.ca_certificate, home_root / "keys" / CA_FILE)
        path = home_root / "config" / "settings.yaml"
        settings = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        audit = settings.get("audit") or {}
        audit["tsa"] = {"url": url, "ca_certificate": f"keys/{CA_FILE}", "policy": authority.policy}
        settings["audit"] = audit
        path.write_text(yaml.safe_dump(settings, sort_keys=False, allow_unicode=True, width=1000), encoding="utf-8")
        yield url
