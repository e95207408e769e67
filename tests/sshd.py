"""A real OpenSSH server on 127.0.0.1 for the SFTP tests: its own host key, config and authorized key, run as
the current user (Debian's openssh-server, installed by scripts/setup.sh)."""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from airflow_procs import free_port

SSHD = Path("/usr/sbin/sshd")
# sshd run as root separates privileges into this folder, which Debian's service makes at boot.
PRIVSEP_DIR = Path("/run/sshd")


def keypair(path: Path, kind: str = "ed25519") -> tuple[str, str]:
    """(private key PEM, public key line) of a new key written to `path` and `path`.pub."""
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "", "-f", str(path)], check=True)
    return path.read_text(), path.with_suffix(".pub").read_text().strip()


@dataclass
class Sshd:
    root: Path
    port: int
    host_key: str  # `TYPE BASE64`, as pinned in config
    client_key: str  # the private key the server accepts
    user: str
    process: subprocess.Popen

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_sshd(root: Path, timeout: float = 15) -> Sshd:
    root.mkdir(parents=True, exist_ok=True)
    _, host_public = keypair(root / "host_ed25519")
    client_private, client_public = keypair(root / "client_ed25519")
    (root / "authorized_keys").write_text(client_public + "\n")
    config = root / "sshd_config"
    config.write_text("\n".join([
        f"HostKey {root / 'host_ed25519'}",
        f"AuthorizedKeysFile {root / 'authorized_keys'}",
        "ListenAddress 127.0.0.1",
        "PidFile none",
        "StrictModes no",  # the test's folders live under /tmp, which is world-writable
        "UsePAM no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "AllowTcpForwarding no",
        "X11Forwarding no",
        "Subsystem sftp internal-sftp",
        "ForceCommand internal-sftp",
        "LogLevel ERROR",
        "",
    ]))
    if os.geteuid() == 0:
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    port = free_port()
    process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config), "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=open(root / "sshd.log", "wb"))
    server = Sshd(root, port, " ".join(host_public.split()[:2]), client_private, getpass.getuser(), process)
    deadline = time.monotonic() + timeout
    while not _banner(port):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"sshd did not start: {(root / 'sshd.log').read_text()[-2000:]}")
        time.sleep(0.05)
    return server


def _banner(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            return sock.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False
