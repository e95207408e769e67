"""RFC 3161 time stamps of the signed heads: asked for at each anchor, kept beside the head as SEQ.json.tsr.

A token's message imprint is SHA-256 of the head's bytes, so `openssl ts -verify -data SEQ.json -in
SEQ.json.tsr -CAfile tsa-ca.pem` checks it with standard tools. The token is a whole TimeStampResp, as
OpenSSL's `-in` expects.

When the authority does not answer, the head waits: its sequence number is kept in DIR/state/timestamps.json
and every later anchor tries again. Exchanges go on while the oldest wait is shorter than
`audit.acceptable_timestamp_failure`; past it, `check_publishing` stops publishing (TimestampingStopped, a
transient error) until the authority answers. Each change of state is an audit event.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from borderx.audit import events as ev
from borderx.audit.trail import AuditTrail
from borderx.config.models import AuditSettings, TsaSettings
from borderx.errors import TimestampError, TimestampingStopped

TOKEN_SUFFIX = ".tsr"
STATE_FILE = "timestamps.json"
QUERY_TYPE, REPLY_TYPE = "application/timestamp-query", "application/timestamp-reply"
# A time-stamp reply is a signature and a certificate or two: a few KB.
MAX_TOKEN_BYTES = 64 << 10


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def verify_token(token: bytes, data: bytes, ca_pem: bytes, policy: str | None = None) -> dt.datetime:
    """The time the token vouches for `data` at, if it is a granted RFC 3161 reply over SHA-256(data) signed
    by a timeStamping certificate under the CA; TimestampError otherwise."""
    from cryptography import x509
    from rfc3161_client import VerificationError, VerifierBuilder, decode_timestamp_response

    try:
        response = decode_timestamp_response(token)
        builder = VerifierBuilder()
        for ca in x509.load_pem_x509_certificates(ca_pem):
            builder = builder.add_root_certificate(ca)
        if policy:
            builder = builder.policy_id(x509.ObjectIdentifier(policy))
        if response.tst_info.message_imprint.hash_algorithm != x509.ObjectIdentifier("2.16.840.1.101.3.4.2.1"):
            raise TimestampError("the token's message imprint is not SHA-256")
        builder.build().verify_message(response, data)
    except TimestampError:
        raise
    except (VerificationError, ValueError) as exc:
        raise TimestampError(f"not a valid time stamp of these bytes: {exc}") from None
    when = response.tst_info.gen_time
    # GeneralizedTime in a token is UTC (RFC 3161 section 2.4.2), whether or not the parser says so.
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.timezone.utc)


def request_token(tsa: TsaSettings, ca_pem: bytes, data: bytes) -> bytes:
    """A token for `data` from the authority, checked before it is kept; TimestampError if there is none."""
    from rfc3161_client import HashAlgorithm, TimestampRequestBuilder, decode_timestamp_response

    query = TimestampRequestBuilder().data(data).hash_algorithm(HashAlgorithm.SHA256).nonce(nonce=True) \
        .cert_request(cert_request=True).build()
    request = urllib.request.Request(tsa.url, data=query.as_bytes(), method="POST",
                                     headers={"Content-Type": QUERY_TYPE, "Accept": REPLY_TYPE})
    try:
        with urllib.request.urlopen(request, timeout=tsa.timeout_seconds) as answer:
            token = answer.read(MAX_TOKEN_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise TimestampError(f"{tsa.url} answered HTTP {exc.code}") from None
    except (OSError, ValueError) as exc:
        raise TimestampError(f"{tsa.url} did not answer: {type(exc).__name__}: {exc}") from None
    if len(token) > MAX_TOKEN_BYTES:
        raise TimestampError(f"{tsa.url} answered more than the {MAX_TOKEN_BYTES} bytes a token can be")
    verify_token(token, data, ca_pem, tsa.policy)
    # A replayed token could not carry this query's nonce.
    if decode_timestamp_response(token).tst_info.nonce != query.nonce:
        raise TimestampError(f"{tsa.url} answered with a token for another query (nonce differs)")
    return token


@dataclass
class _State:
    pending: list[int]
    failing_since: str | None = None
    stopped: bool = False


@dataclass
class Stamping:
    """Stamps signed heads with the configured authority, keeping the ones it could not stamp for later.

    `store(seq, token)` puts a token beside its head (locally and in the bucket).
    """

    settings: AuditSettings
    home_root: Path
    state_folder: Path
    trail: AuditTrail
    clock: Callable[[], dt.datetime]

    @property
    def tsa(self) -> TsaSettings | None:
        return self.settings.tsa

    def ca_pem(self) -> bytes:
        path = Path(self.tsa.ca_certificate)
        path = path if path.is_absolute() else self.home_root / path
        try:
            return path.read_bytes()
        except OSError as exc:
            raise TimestampError(f"{path}: the TSA's CA certificate cannot be read ({exc.strerror})") from None

    def stamp(self, seq: int | None, heads_folder: Path, store: Callable[[int, bytes], None]) -> None:
        """Stamps head `seq` (None: none new) and every head still waiting; records a deferral or a
        resumption."""
        if self.tsa is None:
            return
        with self._state() as state:
            if seq is not None and seq not in state.pending:
                state.pending.append(seq)
            stamped, problem = self._stamp_pending(state, heads_folder, store)
            if problem is None:
                self._resumed(state, stamped)
            elif state.failing_since is None:
                state.failing_since = _utc(self.clock())
                self.trail.record(ev.TimestampDeferred(tsa=self.tsa.url, head_seq=max(state.pending),
                                                       pending=len(state.pending),
                                                       problem=problem))

    def check_publishing(self, heads_folder: Path, store: Callable[[int, bytes], None]) -> None:
        """Raises TimestampingStopped while heads have waited for a time stamp longer than settings accept,
        after one more try of the authority."""
        if self.tsa is None:
            return
        with self._state() as state:
            if state.failing_since is None:
                return
            since = dt.datetime.fromisoformat(state.failing_since.replace("Z", "+00:00"))
            limit = self.settings.acceptable_timestamp_failure
            if self.clock() - since <= limit:
                return
            stamped, problem = self._stamp_pending(state, heads_folder, store)
            if problem is None:
                self._resumed(state, stamped)
                return
            if not state.stopped:
                state.stopped = True
                self.trail.record(ev.PublishingStopped(tsa=self.tsa.url, since=state.failing_since, limit=str(limit),
                                                       pending=len(state.pending), problem=problem))
            raise TimestampingStopped(
                f"publishing stopped: {len(state.pending)} signed audit head(s) have waited for a time stamp since "
                f"{state.failing_since}, longer than the {limit} settings accept "
                f"(audit.acceptable_timestamp_failure); {problem}. Publishing goes on once the TSA answers.")

    def pending(self) -> list[int]:
        with self._state() as state:
            return list(state.pending)

    def _stamp_pending(self, state: _State, heads_folder: Path, store) -> tuple[int, str | None]:
        """How many waiting heads got their token, and what stopped the rest (None: nothing did)."""
        ca, stamped = self.ca_pem(), 0
        for seq in sorted(state.pending):
            head = heads_folder / f"{seq:012d}.json"
            try:
                body = head.read_bytes()
            except FileNotFoundError:
                # A head that is gone cannot be stamped; the auditor's checks report the gap.
                state.pending.remove(seq)
                continue
            try:
                token = request_token(self.tsa, ca, body)
            except TimestampError as exc:
                return stamped, str(exc)
            store(seq, token)
            state.pending.remove(seq)
            stamped += 1
        return stamped, None

    def _resumed(self, state: _State, stamped: int) -> None:
        if state.failing_since is None:
            return
        self.trail.record(ev.TimestampResumed(tsa=self.tsa.url, since=state.failing_since, stamped=stamped,
                                              publishing_stopped=state.stopped))
        state.failing_since, state.stopped = None, False

    @contextmanager
    def _state(self) -> Iterator[_State]:
        """The waiting heads, read and written back under a lock: workers anchor and publish side by side."""
        self.state_folder.mkdir(parents=True, exist_ok=True)
        path = self.state_folder / STATE_FILE
        with open(self.state_folder / f".{STATE_FILE}.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                raw = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
                state = _State(list(raw.get("pending", [])), raw.get("failing_since"), bool(raw.get("stopped")))
                try:
                    yield state
                finally:
                    # Kept even when publishing is refused: the stop is recorded once, not at every refusal.
                    tmp = path.with_name(f".{path.name}.tmp")
                    tmp.write_text(json.dumps(state.__dict__, indent=1, sort_keys=True), encoding="utf-8")
                    tmp.replace(path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def stamping_for(rt) -> Stamping | None:
    """The stamping of a runtime's home, or None when settings name no TSA."""
    settings = rt.config.settings.audit
    if settings.tsa is None:
        return None
    return Stamping(settings, rt.home.root, rt.home.state, rt.trail, rt.clock)
