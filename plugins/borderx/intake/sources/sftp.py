"""Pull over SFTP: an agency's export server, laid out as PATH/DATASET/FILE, read through Airflow's SFTP hook.

The server's host key is pinned in the agency's config (`pull.sftp.host_key`): only that key type is offered
in the key exchange, and a server that presents another key is refused before anything is sent or read,
with an error naming the agency and the host and a `refused` audit event, once per key presented. The
private key the hub logs in with comes from an environment variable or an Airflow connection, never from
the config, and never reaches a message.

The server is only listed, stat'ed and read. Only entries that are regular files of their own (the server's
lstat) with a complete name are taken; what a hostile server calls a file is checked again here: a name
that cannot be an intake file's is refused by the copy (`copy.name_problem`), a file is read no further than
one byte past the size it was listed with, and a copy whose size or modification time changed is thrown
away and left for the next round.

This module is imported by the pull task only: paramiko and the provider load when a pull runs.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import posixpath
import socket
import stat
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

import paramiko

from borderx.config.models import HOST_KEY_TYPES, SftpSource
from borderx.errors import KeyMaterialError, SourceRefused, SourceUnreachable
from borderx.home import Home
from borderx.intake.finding import is_candidate_name
from borderx.intake.refusals import record_once
from borderx.intake.sources.copy import Copied, SourceObject, copy_in
from borderx.intake.watch import AnnouncedStore

log = logging.getLogger(__name__)

CONNECT_SECONDS = 20
# A server that stops answering in the middle of a listing or a file fails the pull instead of holding it.
ANSWER_SECONDS = 120
# How much is asked for at a time, in requests all in flight at once: fast over a long link, and never more
# than a window in memory, whatever size the server claims.
READ_WINDOW = 8 << 20
# A window's requests take milliseconds to send; the wait is bounded should a server stop reading them.
READ_AHEAD_WAIT = 30.0
HOST_KEY_CHANGED = "host-key-changed"
NAME_NOT_UTF8 = "name-not-utf8"
# The host key algorithms that a pinned key of each type can sign with.
ALGORITHMS = {kind: (kind,) for kind in HOST_KEY_TYPES} | {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


def pinned_key(source: SftpSource) -> paramiko.PKey:
    kind, data = source.host_key.split()[:2]
    return paramiko.PKey.from_type_string(kind, base64.b64decode(data))


def only_pinned_type(source: SftpSource) -> dict[str, list[str]]:
    """paramiko's disabled_algorithms: every host key algorithm but those of the pinned key's type, so a server
    that also has a key of another type cannot present that one instead."""
    allowed = ALGORITHMS[source.host_key.split()[0]]
    offered = {a for algorithms in ALGORITHMS.values() for a in algorithms} | set(paramiko.Transport._preferred_keys)
    return {"keys": sorted(offered - set(allowed))}


def address(source: SftpSource) -> str:
    return f"{source.host}:{source.port}"


def remote_path(source: SftpSource, dataset: str, name: str = "") -> str:
    return posixpath.join(source.path, dataset, name) if name else posixpath.join(source.path, dataset)


def uri_of(source: SftpSource, path: str) -> str:
    # /~/ marks a path relative to the login folder, as SFTP URLs write it.
    return f"sftp://{source.user}@{address(source)}{path if path.startswith('/') else '/~/' + path}"


# -- the host key ------------------------------------------------------------------------------------------------


def host_key_message(agency: str, source: SftpSource, presented: str) -> str:
    return (f"{agency}: the SFTP server {address(source)} presents {presented}, not the pinned host key "
            f"{pinned_key(source).fingerprint} ({source.host_key.split()[0]}); refused, nothing was read there. "
            "If the agency changed its key, confirm the new one with it out of band and update pull.sftp.host_key")


def refuse_host_key(home: Home, agency: str, source: SftpSource, presented: str) -> SourceRefused:
    """Logs the refusal and records it in the audit trail once per key presented; returns the error to raise."""
    message = host_key_message(agency, source, presented)
    log.error("%s", message)
    record_once(home, f"host-key:{address(source)}:{presented}", (0, 0), reason=HOST_KEY_CHANGED, provider=agency,
                host=address(source), presented=presented, pinned=pinned_key(source).fingerprint)
    return SourceRefused(message)


def presented_host_key(source: SftpSource, timeout: float = CONNECT_SECONDS) -> str:
    """What the server presents as its host key of the pinned type: `host key SHA256:...`, or `no TYPE host key`.
    A key exchange only: no login, nothing read. Raises SourceUnreachable."""
    try:
        with socket.create_connection((source.host.strip("[]"), source.port), timeout=timeout) as sock:
            transport = paramiko.Transport(sock, disabled_algorithms=only_pinned_type(source))
            try:
                transport.start_client(timeout=timeout)
                return f"host key {transport.get_remote_server_key().fingerprint}"
            finally:
                transport.close()
    except paramiko.ssh_exception.IncompatiblePeer:
        return f"no {source.host_key.split()[0]} host key"
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise SourceUnreachable(f"the SFTP server {address(source)} cannot be reached ({type(exc).__name__})") from None


def host_key_problem(agency: str, source: SftpSource) -> str | None:
    """For `borderx check`: why the hub would refuse the server now, or None if it presents the pinned key."""
    try:
        presented = presented_host_key(source)
    except SourceUnreachable as exc:
        return str(exc)
    if presented == f"host key {pinned_key(source).fingerprint}":
        return None
    return host_key_message(agency, source, presented)


# -- the connection -------------------------------------------------------------------------------------------


def _private_key(agency: str, variable: str) -> paramiko.PKey:
    text = os.environ.get(variable)
    if not text:
        raise KeyMaterialError(f"{agency}: the SFTP key's environment variable {variable} is not set")
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise KeyMaterialError(f"{agency}: environment variable {variable} holds no unencrypted OpenSSH private key "
                           "(ed25519, ECDSA or RSA)")


def sftp_hook(agency: str, source: SftpSource):
    """Airflow's SFTP hook for the server, pinned to its host key, logging in with the configured key (never a
    key from ~/.ssh), one connection attempt: the task's retries do the rest. The hook cannot turn paramiko's
    SSH agent off: a worker with SSH_AUTH_SOCK set would offer the agent's keys after the configured one."""
    from airflow.providers.sftp.hooks.sftp import SFTPHook

    conn_id = source.key.airflow_connection
    try:
        hook = SFTPHook(ssh_conn_id=conn_id, remote_host=source.host.strip("[]"), username=source.user,
                        port=source.port, conn_timeout=CONNECT_SECONDS, auth_timeout=CONNECT_SECONDS,
                        banner_timeout=CONNECT_SECONDS, conn_retry_attempts=1, no_host_key_check=False,
                        disabled_algorithms=only_pinned_type(source))
    except Exception as exc:  # the provider raises its own types for a missing connection or an unreadable key
        raise KeyMaterialError(f"{agency}: Airflow connection {conn_id!r} cannot log in to SFTP "
                               f"({type(exc).__name__})") from None
    if source.key.env:
        hook.pkey, hook.key_file, hook.password = _private_key(agency, source.key.env), None, None
    hook.host_key, hook.allow_host_key_change, hook.look_for_keys = pinned_key(source), False, False
    hook.compress = source.compress
    return hook


def key_origin(source: SftpSource) -> str:
    return (f"environment variable {source.key.env}" if source.key.env
            else f"Airflow connection {source.key.airflow_connection!r}")


@contextmanager
def session(home: Home, agency: str, source: SftpSource) -> Iterator[paramiko.SFTPClient]:
    """An SFTP session with the agency's server, once it presented the pinned host key and accepted the hub's key.

    Raises SourceRefused (another host key, or the hub's key refused), SourceUnreachable or KeyMaterialError.
    """
    hook = sftp_hook(agency, source)
    with ExitStack() as stack:
        try:
            sftp = stack.enter_context(hook.get_managed_conn())
        except paramiko.BadHostKeyException as exc:
            if exc.key == pinned_key(source):
                raise SourceRefused(f"{agency}: the SFTP server {address(source)} presents the pinned host key, "
                                    "but the hub user's ~/.ssh/known_hosts holds another for it: remove that "
                                    "line") from None
            raise refuse_host_key(home, agency, source, f"host key {exc.key.fingerprint}") from None
        except paramiko.ssh_exception.IncompatiblePeer:
            raise refuse_host_key(home, agency, source, f"no {source.host_key.split()[0]} host key") from None
        except paramiko.AuthenticationException:
            raise SourceRefused(f"{agency}: the SFTP server {address(source)} does not accept the key of "
                                f"{source.user} from {key_origin(source)}") from None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise SourceUnreachable(f"{agency}: the SFTP server {address(source)} cannot be reached "
                                    f"({type(exc).__name__})") from None
        # The hub user's known_hosts is consulted before the pin: only the pinned key itself is good enough.
        presented = sftp.get_channel().get_transport().get_remote_server_key()
        if presented != pinned_key(source):
            raise refuse_host_key(home, agency, source, f"host key {presented.fingerprint}")
        sftp.get_channel().settimeout(ANSWER_SECONDS)
        yield sftp


# -- listing and copying --------------------------------------------------------------------------------------


def waiting_on_server(home: Home, sftp: paramiko.SFTPClient, agency: str, source: SftpSource, datasets: list[str],
                      settle_seconds: float, store: AnnouncedStore, now: float | None = None) -> list[SourceObject]:
    """Regular files under PATH/DATASET/ that nobody changed for the settle time, not copied before."""
    now = time.time() if now is None else now
    found = []
    for dataset in sorted(datasets):
        for entry in _entries(home, sftp, agency, source, dataset):
            if not (is_candidate_name(entry.filename) and stat.S_ISREG(entry.st_mode or 0)
                    and entry.st_size is not None and entry.st_mtime is not None):
                continue
            # SFTP gives whole seconds: a file is as young as the end of its second.
            if now - (entry.st_mtime + 1) < settle_seconds:
                continue  # still being written, as far as anyone can tell
            obj = SourceObject(agency, dataset, entry.filename, uri_of(source, remote_path(source, dataset,
                                                                                         entry.filename)),
                               entry.st_size, str(entry.st_mtime))
            if not store.contains(*obj.identity):
                found.append(obj)
    return found


def _entries(home: Home, sftp: paramiko.SFTPClient, agency: str, source: SftpSource,
             dataset: str) -> list[paramiko.SFTPAttributes]:
    folder = remote_path(source, dataset)
    try:
        return sftp.listdir_attr(folder)
    except FileNotFoundError:
        return []
    except PermissionError:
        log.warning("%s/%s: %s cannot be listed by %s; nothing in it is taken", agency, dataset,
                    uri_of(source, folder), source.user)
        return []
    except UnicodeDecodeError:
        # paramiko reads a folder's names as UTF-8 and gives up on the whole listing at the first other name.
        log.warning("%s/%s: a name in %s is not UTF-8; nothing in the folder is taken until it is renamed",
                    agency, dataset, uri_of(source, folder))
        record_once(home, f"not-utf8:{uri_of(source, folder)}", (0, 0), reason=NAME_NOT_UTF8, provider=agency,
                    dataset=dataset, path=uri_of(source, folder))
        return []


def _read_into(remote: paramiko.SFTPFile, limit: int, out: BinaryIO) -> None:
    """Up to `limit` bytes of `remote` into `out`, a window of requests in flight at a time. paramiko's own
    read-ahead plans the whole file at once: a size a server merely claims would take that much memory."""
    step = remote.MAX_REQUEST_SIZE
    try:
        for start in range(0, limit, READ_WINDOW):
            chunks = [(at, min(step, limit - at)) for at in range(start, min(start + READ_WINDOW, limit), step)]
            for (_, size), block in zip(chunks, remote.readv(chunks)):
                out.write(block)
                if len(block) < size:
                    return
    finally:
        _read_ahead_sent(remote)


def _read_ahead_sent(remote: paramiko.SFTPFile) -> None:
    """Waits for `readv`'s thread to have sent its window of requests. A file shorter than listed stops the
    reading early, with that thread still sending; were the session closed first, the thread would die on the
    closed socket with a traceback."""
    for thread in threading.enumerate():
        if getattr(thread, "_target", None) == remote._prefetch_thread:
            thread.join(READ_AHEAD_WAIT)


def copy_from_server(home: Home, sftp: paramiko.SFTPClient, source: SftpSource, intake: Path, obj: SourceObject,
                     store: AnnouncedStore) -> Copied:
    """Copies the version of one file that was listed; a file changed, removed or unreadable since is left."""
    path = remote_path(source, obj.dataset, obj.name)

    def write(out: BinaryIO) -> None:
        with sftp.open(path, "rb") as remote:
            if not stat.S_ISREG(remote.stat().st_mode or 0):
                return  # not a file any more: the size check throws the copy away
            # One byte past the listed size tells a file that grew: the size check then fails.
            _read_into(remote, obj.size + 1, out)

    def unchanged() -> bool:
        now = sftp.lstat(path)
        return stat.S_ISREG(now.st_mode or 0) and (now.st_size, str(now.st_mtime)) == (obj.size, obj.version)

    try:
        return copy_in(home, intake, obj, write, unchanged, store)
    except (FileNotFoundError, PermissionError, EOFError) as exc:
        # EOFError: the file ended before the size it was listed with (paramiko's read-ahead says so this way).
        log.warning("%s cannot be read as listed now (%s); left for the next round", obj.uri, type(exc).__name__)
        return Copied("changed", obj.name, obj.uri)


def pull_from_server(config, home: Home, agency: str, datasets: list[str],
                     store: AnnouncedStore) -> tuple[str, list[Copied]]:
    """(the source as shown, what became of each new file) for an agency whose pull source is an SFTP server."""
    source = config.agencies[agency].pull.sftp
    configured = config.agencies[agency].intake.folder
    outcomes = []
    with session(home, agency, source) as sftp:
        try:
            for obj in waiting_on_server(home, sftp, agency, source, datasets,
                                         config.settings.intake.settle_seconds, store):
                folder = home.intake_folder(agency, obj.dataset, configured)
                outcomes.append(copy_from_server(home, sftp, source, folder, obj, store))
        except (EOFError, paramiko.SSHException, socket.timeout) as exc:
            raise SourceUnreachable(f"{agency}: the SFTP server {address(source)} broke off "
                                    f"({type(exc).__name__}); what was copied stays copied") from exc
    return uri_of(source, source.path), outcomes
