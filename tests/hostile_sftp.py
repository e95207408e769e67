"""An SFTP server on 127.0.0.1 that lies, for attack tests: it lists names no file system holds (`/`, `..`,
NUL), entries of every kind, and files whose content does not match the size it listed. Built on paramiko's
server side; it records every path a client asked to open, and lets nothing be written or removed."""

from __future__ import annotations

import socket
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from sshd import keypair

OLD = int(time.time()) - 3600


@dataclass
class Entry:
    """One listed entry: what the listing says (size, kind) and what reading it gives (`content`, or `endless`)."""

    name: str
    content: bytes = b""
    size: int | None = None  # as listed; the content's length unless given
    kind: int = stat.S_IFREG
    endless: bool = False

    def attributes(self) -> paramiko.SFTPAttributes:
        attr = paramiko.SFTPAttributes()
        attr.filename = self.name
        attr.st_size = len(self.content) if self.size is None else self.size
        attr.st_mode = self.kind | 0o644
        attr.st_mtime = attr.st_atime = OLD
        attr.st_uid = attr.st_gid = 0
        return attr


@dataclass
class Listing:
    folders: dict[str, list[Entry]]
    opened: list[str] = field(default_factory=list)

    def entry(self, path: str) -> Entry | None:
        folder, _, name = path.rpartition("/")
        return next((e for e in self.folders.get(folder, []) if e.name == name), None)


class _Handle(paramiko.SFTPHandle):
    def __init__(self, entry: Entry):
        super().__init__()
        self.entry = entry

    def read(self, offset, length):
        if self.entry.endless:
            return b"x" * length
        return self.entry.content[offset:offset + length] or paramiko.SFTP_EOF

    def stat(self):
        return self.entry.attributes()


class _Files(paramiko.SFTPServerInterface):
    def __init__(self, server, listing: Listing):
        super().__init__(server)
        self.listing = listing

    def list_folder(self, path):
        entries = self.listing.folders.get(path.rstrip("/"))
        return paramiko.SFTP_NO_SUCH_FILE if entries is None else [e.attributes() for e in entries]

    def stat(self, path):
        entry = self.listing.entry(path)
        return paramiko.SFTP_NO_SUCH_FILE if entry is None else entry.attributes()

    lstat = stat

    def open(self, path, flags, attr):
        self.listing.opened.append(path)
        entry = self.listing.entry(path)
        if entry is None:
            return paramiko.SFTP_NO_SUCH_FILE
        if flags & (paramiko.sftp.SFTP_FLAG_WRITE | paramiko.sftp.SFTP_FLAG_CREATE):
            return paramiko.SFTP_PERMISSION_DENIED
        return _Handle(entry)


class _Login(paramiko.ServerInterface):
    def __init__(self, client_key: paramiko.PKey):
        self.client_key = client_key

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        return paramiko.AUTH_SUCCESSFUL if key == self.client_key else paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


@dataclass
class HostileSftp:
    port: int
    host_key: str
    client_key: str
    listing: Listing
    _socket: socket.socket
    _transports: list = field(default_factory=list)

    def stop(self) -> None:
        self._socket.close()
        for transport in self._transports:
            transport.close()


def start_hostile_sftp(root: Path, listing: Listing) -> HostileSftp:
    root.mkdir(parents=True, exist_ok=True)
    _, host_public = keypair(root / "host_ed25519")
    client_private, _ = keypair(root / "client_ed25519")
    host_key = paramiko.Ed25519Key(filename=str(root / "host_ed25519"))
    client_key = paramiko.Ed25519Key(filename=str(root / "client_ed25519"))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    server = HostileSftp(listener.getsockname()[1], " ".join(host_public.split()[:2]), client_private, listing,
                         listener)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # stopped
            transport = paramiko.Transport(conn)
            transport.add_server_key(host_key)
            transport.set_subsystem_handler("sftp", paramiko.SFTPServer, _Files, listing)
            server._transports.append(transport)
            try:
                transport.start_server(server=_Login(client_key))
            except (paramiko.SSHException, EOFError, OSError):
                transport.close()

    threading.Thread(target=serve, daemon=True).start()
    return server
