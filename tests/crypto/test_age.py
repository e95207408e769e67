"""age v1: round trips, interoperability with the age CLI and pyrage, the C2SP testkit."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import re
import shutil
import subprocess
import zlib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from borderx.crypto import age, bech32

KIB64 = 64 * 1024
SIZES = [0, 1, KIB64 - 1, KIB64, KIB64 + 1, 3 * KIB64 + 5]

# The C2SP age conformance vectors, kept with the tests (0BSD / CC0 / Unlicense): see its README.
TESTKIT = Path(__file__).resolve().parents[1] / "vectors" / "age-testkit"

needs_age_cli = pytest.mark.skipif(
    shutil.which("age") is None or shutil.which("age-keygen") is None, reason="age CLI not installed"
)


def run(*cmd: str | Path, stdin: bytes | None = None) -> bytes:
    result = subprocess.run([str(c) for c in cmd], input=stdin, capture_output=True, check=False)
    assert result.returncode == 0, f"{cmd[0]} failed: {result.stderr.decode(errors='replace')}"
    return result.stdout


def plaintext(size: int) -> bytes:
    # Deterministic and not all-zero, so misplaced chunks would be noticed.
    return hashlib.shake_256(size.to_bytes(8, "big")).digest(size) if size else b""


def new_identity() -> tuple[age.X25519Identity, age.X25519Recipient, str]:
    identity_s, recipient_s = age.generate_x25519_identity()
    return age.X25519Identity.parse(identity_s), age.X25519Recipient.parse(recipient_s), identity_s


def write_identity_file(path: Path, identity_s: str) -> Path:
    recipient_s = age.X25519Identity.parse(identity_s).recipient().string
    path.write_text(age.format_identity_file(identity_s, recipient_s, datetime.now(timezone.utc)))
    path.chmod(0o600)
    return path


def encrypt_in_pieces(data: bytes, recipients, armor: bool, piece: int = 10_000) -> bytes:
    out = io.BytesIO()
    with age.encrypting_writer(out, recipients, armor=armor) as writer:
        for start in range(0, len(data), piece):
            writer.write(data[start : start + piece])
    return out.getvalue()


def read_in_pieces(reader, piece: int = 7777) -> bytes:
    parts = []
    while chunk := reader.read(piece):
        parts.append(chunk)
    return b"".join(parts)


def header_end(ciphertext: bytes) -> int:
    """Offset of the payload nonce in a binary age file."""
    mac_line = ciphertext.index(b"\n--- ") + 1
    return ciphertext.index(b"\n", mac_line) + 1


def seeded_rand(seed: bytes):
    """A deterministic stand-in for os.urandom, so two encryptions can be compared byte for byte."""
    stream = hashlib.shake_256(seed).digest(4096)
    pos = 0

    def rand(n: int) -> bytes:
        nonlocal pos
        pos += n
        return stream[pos - n : pos]

    return rand


# --------------------------------------------------------------------------
# Keys and identity files
# --------------------------------------------------------------------------


def test_generated_strings_have_age_shape():
    identity_s, recipient_s = age.generate_x25519_identity()
    assert re.fullmatch(r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}", identity_s)
    assert re.fullmatch(r"age1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{58}", recipient_s)
    assert age.X25519Identity.parse(identity_s).recipient().string == recipient_s
    assert age.X25519Recipient.parse(recipient_s).string == recipient_s


def test_identity_file_format_is_exact():
    identity_s, recipient_s = age.generate_x25519_identity()
    created = datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone.utc)
    text = age.format_identity_file(identity_s, recipient_s, created)
    assert text == f"# created: 2026-11-28T12:00:00Z\n# public key: {recipient_s}\n{identity_s}\n"
    [parsed] = age.parse_identities(text)
    assert parsed.recipient().string == recipient_s
    other_recipient = age.generate_x25519_identity()[1]
    with pytest.raises(ValueError):
        age.format_identity_file(identity_s, other_recipient, created)


@needs_age_cli
def test_identity_file_is_accepted_by_age_tools(tmp_path):
    identity_s, recipient_s = age.generate_x25519_identity()
    id_file = write_identity_file(tmp_path / "id.txt", identity_s)
    assert run("age-keygen", "-y", id_file).decode().strip() == recipient_s
    ciphertext = run("age", "-r", recipient_s, stdin=b"hello")
    assert run("age", "-d", "-i", id_file, stdin=ciphertext) == b"hello"


@needs_age_cli
def test_age_keygen_identity_file_parses(tmp_path):
    run("age-keygen", "-o", tmp_path / "k.txt")
    [identity] = age.parse_identities((tmp_path / "k.txt").read_text())
    assert identity.recipient().string == run("age-keygen", "-y", tmp_path / "k.txt").decode().strip()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "age1",
        "AGE-SECRET-KEY-1",
        "not a key at all",
    ],
)
def test_recipient_parse_rejects_garbage(text):
    with pytest.raises(ValueError, match="recipient"):
        age.X25519Recipient.parse(text)


def test_key_parse_errors_are_clear_and_do_not_echo_secrets():
    identity_s, recipient_s = age.generate_x25519_identity()
    with pytest.raises(ValueError, match="lowercase"):
        age.X25519Recipient.parse(recipient_s.upper())
    with pytest.raises(ValueError, match="recipient"):
        age.X25519Recipient.parse(identity_s)
    with pytest.raises(ValueError, match="identity"):
        age.X25519Identity.parse(recipient_s)
    with pytest.raises(ValueError, match="upper case"):
        age.X25519Identity.parse(identity_s.lower())
    broken = identity_s[:-1] + ("Q" if identity_s[-1] != "Q" else "P")
    with pytest.raises(ValueError, match="checksum") as excinfo:
        age.X25519Identity.parse(broken)
    assert identity_s[16:40] not in str(excinfo.value)
    with pytest.raises(ValueError, match="line 2") as excinfo:
        age.parse_identities(f"# comment\n{broken}\n")
    assert identity_s[16:40] not in str(excinfo.value)
    with pytest.raises(ValueError, match="no identities"):
        age.parse_identities("# only a comment\n\n")
    assert identity_s not in repr(age.X25519Identity.parse(identity_s))


# --------------------------------------------------------------------------
# Round trips with ourselves
# --------------------------------------------------------------------------


@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armor"])
@pytest.mark.parametrize("size", SIZES)
def test_round_trip(size, armor):
    data = plaintext(size)
    ids = [new_identity() for _ in range(3)]
    ciphertext = encrypt_in_pieces(data, [r for _, r, _ in ids], armor)
    expected_chunks = max(1, -(-size // KIB64))
    if not armor:
        assert len(ciphertext) - header_end(ciphertext) == 16 + size + 16 * expected_chunks
        assert ciphertext.count(b"\n-> X25519 ") == 3
    for identity, _, _ in ids:
        reader = age.decrypting_reader(io.BytesIO(ciphertext), [identity])
        assert read_in_pieces(reader) == data
    assert age.decrypt(ciphertext, [ids[1][0]]) == data


class ShortReads:
    """A pipe-like source: every read returns fewer bytes than asked for."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0
        self._sizes = itertools.cycle([1, 7, 4096, KIB64 - 1, 3, 100_000])

    def read(self, n: int = -1) -> bytes:
        size = next(self._sizes) if n < 0 else min(n, next(self._sizes))
        out = self._data[self._pos : self._pos + size]
        self._pos += len(out)
        return out


@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armor"])
def test_short_reads_from_source(armor):
    identity, recipient, _ = new_identity()
    data = plaintext(3 * KIB64 + 5)
    ciphertext = age.encrypt(data, [recipient], armor=armor)
    assert age.decrypting_reader(ShortReads(ciphertext), [identity]).read() == data


def test_armor_with_crlf_and_surrounding_whitespace():
    identity, recipient, _ = new_identity()
    data = plaintext(3 * KIB64 + 5)
    armored = age.encrypt(data, [recipient], armor=True)
    assert age.decrypt(b"\n \t\n" + armored.replace(b"\n", b"\r\n") + b"\r\n\n", [identity]) == data
    with pytest.raises(age.ArmorError):
        age.decrypt(armored + b"trailing", [identity])
    lines = armored.split(b"\n")
    lines[5] = lines[5][:-1]  # one short line in the middle
    with pytest.raises(age.ArmorError):
        age.decrypt(b"\n".join(lines), [identity])


def test_armor_layout():
    _, recipient, _ = new_identity()
    text = age.encrypt(plaintext(5000), [recipient], armor=True).decode("ascii")
    lines = text.split("\n")
    assert lines[0] == "-----BEGIN AGE ENCRYPTED FILE-----"
    assert lines[-2:] == ["-----END AGE ENCRYPTED FILE-----", ""]
    body = lines[1:-2]
    assert all(len(line) == 64 for line in body[:-1])
    assert 0 < len(body[-1]) <= 64


def test_writer_buffers_at_most_one_chunk():
    _, recipient, _ = new_identity()
    out = io.BytesIO()
    with age.encrypting_writer(out, [recipient]) as writer:
        writer.write(plaintext(3 * KIB64 + 1))
        written = out.getvalue()
        assert len(written) - header_end(written) == 16 + 3 * (KIB64 + 16)
    assert len(out.getvalue()) - header_end(out.getvalue()) == 16 + 3 * (KIB64 + 16) + 1 + 16


def test_injected_randomness_makes_output_reproducible():
    _, recipient, _ = new_identity()
    first = age.encrypt(b"same", [recipient], rand=seeded_rand(b"seed"))
    assert first == age.encrypt(b"same", [recipient], rand=seeded_rand(b"seed"))
    assert first != age.encrypt(b"same", [recipient])


BATCH = 16 * KIB64  # chunks that the file functions move per system call
BATCH_SIZES = [0, 1, KIB64, BATCH - 1, BATCH, BATCH + 1, 2 * BATCH, 2 * BATCH + KIB64 + 5]


@pytest.mark.parametrize("size", BATCH_SIZES)
def test_write_pattern_does_not_change_the_ciphertext(size):
    # One big write goes through the batched sealing path, small ones through
    # the chunk-at-a-time path; both must produce the very same file.
    _, recipient, _ = new_identity()
    data = plaintext(size)
    reference = age.encrypt(data, [recipient], rand=seeded_rand(b"pattern"))
    for piece in (1000, KIB64 - 1, KIB64, BATCH + 3):
        out = io.BytesIO()
        with age.encrypting_writer(out, [recipient], rand=seeded_rand(b"pattern")) as writer:
            for start in range(0, size, piece):
                writer.write(memoryview(data)[start : start + piece])
        assert out.getvalue() == reference, piece


@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armor"])
@pytest.mark.parametrize("size", BATCH_SIZES)
def test_file_functions_across_batch_boundaries(tmp_path, size, armor):
    identity, recipient, _ = new_identity()
    data = plaintext(size)
    src = tmp_path / "plain.bin"
    src.write_bytes(data)
    age.encrypt_file(src, tmp_path / "file.age", [recipient], armor=armor)
    ciphertext = (tmp_path / "file.age").read_bytes()
    if not armor:
        assert len(ciphertext) - header_end(ciphertext) == 16 + size + 16 * max(1, -(-size // KIB64))
    assert age.decrypt(ciphertext, [identity]) == data
    age.decrypt_file(tmp_path / "file.age", tmp_path / "out.bin", [identity])
    assert (tmp_path / "out.bin").read_bytes() == data


def corruptions(ciphertext: bytes) -> dict[str, bytes]:
    start = header_end(ciphertext) + 16
    chunks = -(-(len(ciphertext) - start) // (KIB64 + 16))
    cases = {}
    for index in sorted({0, 15, 16, 17, chunks - 2, chunks - 1}):
        data = bytearray(ciphertext)
        data[start + index * (KIB64 + 16) + 7] ^= 0x40
        cases[f"chunk {index} flipped"] = bytes(data)
    for index in (16, 32, chunks - 1):
        cases[f"cut after chunk {index - 1}"] = ciphertext[: start + index * (KIB64 + 16)]
    cases["cut inside the last chunk"] = ciphertext[:-5]
    cases["trailing byte"] = ciphertext + b"\0"
    cases["trailing chunk"] = ciphertext + ciphertext[start : start + KIB64 + 16]
    return cases


@pytest.mark.parametrize("size", [33 * KIB64, 33 * KIB64 + 5], ids=["full-final", "short-final"])
def test_decrypt_file_rejects_damage_anywhere(tmp_path, size):
    identity, recipient, _ = new_identity()
    ciphertext = age.encrypt(plaintext(size), [recipient])
    for name, damaged in corruptions(ciphertext).items():
        (tmp_path / "bad.age").write_bytes(damaged)
        with pytest.raises(age.PayloadError):
            age.decrypt(damaged, [identity])
        with pytest.raises(age.PayloadError):
            age.decrypt_file(tmp_path / "bad.age", tmp_path / "out.bin", [identity])
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.age"], name


def test_exception_inside_writer_leaves_undecryptable_output():
    identity, recipient, _ = new_identity()
    out = io.BytesIO()
    with pytest.raises(RuntimeError):
        with age.encrypting_writer(out, [recipient]) as writer:
            writer.write(plaintext(2 * KIB64 + 3))
            raise RuntimeError("interrupted")
    with pytest.raises(age.PayloadError):
        age.decrypt(out.getvalue(), [identity])


def test_scrypt_round_trip():
    data = plaintext(KIB64 + 9)
    ciphertext = age.encrypt(data, [age.ScryptRecipient(b"correct horse", work_factor=10)])
    assert age.decrypt(ciphertext, [age.ScryptIdentity(b"correct horse")]) == data
    with pytest.raises(age.NoIdentityMatchedError):
        age.decrypt(ciphertext, [age.ScryptIdentity(b"wrong horse")])
    with pytest.raises(age.HeaderError, match="work factor"):
        age.decrypt(ciphertext, [age.ScryptIdentity(b"correct horse", max_work_factor=9)])
    _, recipient, _ = new_identity()
    with pytest.raises(ValueError, match="only recipient"):
        age.encrypt(data, [age.ScryptRecipient(b"pw", work_factor=10), recipient])


# --------------------------------------------------------------------------
# Failures
# --------------------------------------------------------------------------


def test_wrong_identity_is_no_match():
    _, recipient, _ = new_identity()
    stranger, _, stranger_s = new_identity()
    ciphertext = age.encrypt(b"secret", [recipient])
    with pytest.raises(age.NoIdentityMatchedError) as excinfo:
        age.decrypting_reader(io.BytesIO(ciphertext), [stranger])
    assert stranger_s not in str(excinfo.value)
    with pytest.raises(age.NoIdentityMatchedError):
        age.decrypt(age.encrypt(b"x", [recipient], armor=True), [stranger])


def test_flipped_header_bytes_are_header_errors():
    identity, recipient, _ = new_identity()
    ciphertext = age.encrypt(plaintext(1000), [recipient])
    mac_at = ciphertext.index(b"\n--- ") + 5

    def flipped(pos: int, value: bytes | None = None) -> bytes:
        data = bytearray(ciphertext)
        data[pos] = value[0] if value else data[pos] ^ 0x01
        return bytes(data)

    cases = {
        "intro": flipped(3),
        "mac character": flipped(mac_at, b"B" if ciphertext[mac_at] != ord("B") else b"C"),
        "mac garbage": flipped(mac_at, b"*"),
        "stanza line": flipped(ciphertext.index(b"-> X25519") + 1),
        "extra stanza": ciphertext[: mac_at - 4] + b"-> grease\n\n" + ciphertext[mac_at - 4 :],
    }
    for name, corrupted in cases.items():
        with pytest.raises(age.HeaderError):
            age.decrypt(corrupted, [identity])
    with pytest.raises(age.HeaderError, match="MAC"):
        age.decrypt(cases["extra stanza"], [identity])


@pytest.mark.parametrize("offset", [0, KIB64 + 16 + 100, -1], ids=["first", "second", "last-byte"])
def test_flipped_payload_byte_is_payload_error(offset):
    identity, recipient, _ = new_identity()
    data = plaintext(2 * KIB64 + 50)
    ciphertext = bytearray(age.encrypt(data, [recipient]))
    pos = header_end(ciphertext) + 16 + offset if offset >= 0 else len(ciphertext) + offset
    ciphertext[pos] ^= 0x80
    reader = age.decrypting_reader(io.BytesIO(bytes(ciphertext)), [identity])
    released = b""
    with pytest.raises(age.PayloadError):
        while chunk := reader.read(KIB64):
            released += chunk
    # Whatever was handed out before the failure is authentic plaintext.
    assert data.startswith(released)


@pytest.mark.parametrize("cut", [1, 17, KIB64 + 32, "chunk-boundary"])
def test_truncated_file_is_payload_error(cut):
    identity, recipient, _ = new_identity()
    ciphertext = age.encrypt(plaintext(2 * KIB64 + 50), [recipient])
    if cut == "chunk-boundary":
        truncated = ciphertext[: header_end(ciphertext) + 16 + 2 * (KIB64 + 16)]
    else:
        truncated = ciphertext[:-cut]
    with pytest.raises(age.PayloadError):
        age.decrypt(truncated, [identity])


def test_trailing_data_is_payload_error():
    identity, recipient, _ = new_identity()
    # After a full-size final chunk the extra byte is recognisably trailing data;
    # after a short one it just makes that chunk fail authentication.
    ciphertext = age.encrypt(plaintext(KIB64), [recipient])
    with pytest.raises(age.PayloadError, match="after the final"):
        age.decrypt(ciphertext + b"\0", [identity])
    with pytest.raises(age.PayloadError):
        age.decrypt(age.encrypt(b"abc", [recipient]) + b"\0", [identity])


def test_decrypt_file_writes_nothing_on_failure(tmp_path):
    identity, recipient, _ = new_identity()
    src = tmp_path / "plain.bin"
    src.write_bytes(plaintext(3 * KIB64 + 5))
    age.encrypt_file(src, tmp_path / "good.age", [recipient])

    out = tmp_path / "out.bin"
    age.decrypt_file(tmp_path / "good.age", out, [identity])
    assert out.read_bytes() == src.read_bytes()
    assert out.stat().st_mode & 0o777 == 0o600

    corrupted = bytearray((tmp_path / "good.age").read_bytes())
    corrupted[-5] ^= 0x01
    (tmp_path / "bad.age").write_bytes(bytes(corrupted))
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(age.PayloadError):
        age.decrypt_file(tmp_path / "bad.age", tmp_path / "never.bin", [identity])
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    with pytest.raises(age.NoIdentityMatchedError):
        age.decrypt_file(tmp_path / "good.age", tmp_path / "never.bin", [new_identity()[0]])
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# --------------------------------------------------------------------------
# Hybrid post-quantum recipients (ML-KEM-768 + X25519)
# --------------------------------------------------------------------------


def new_hybrid_identity() -> tuple[age.HybridIdentity, age.HybridRecipient, str]:
    identity_s, recipient_s = age.generate_hybrid_identity()
    return age.HybridIdentity.parse(identity_s), age.HybridRecipient.parse(recipient_s), identity_s


def test_hybrid_strings_have_age_shape():
    identity_s, recipient_s = age.generate_hybrid_identity()
    assert re.fullmatch(r"AGE-SECRET-KEY-PQ-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}", identity_s)
    # 1216 bytes of key (ML-KEM-768 encapsulation key + X25519 point) in bech32.
    assert re.fullmatch(r"age1pq1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{1952}", recipient_s)
    identity = age.HybridIdentity.parse(identity_s)
    assert identity.string == identity_s
    assert identity.recipient().string == recipient_s
    assert age.HybridRecipient.parse(recipient_s).string == recipient_s
    assert age.HybridRecipient.parse(recipient_s) == identity.recipient()
    assert identity_s not in repr(identity)
    assert len(repr(identity)) < 100 and len(repr(identity.recipient())) < 100


def test_testkit_hybrid_identity_is_deterministic():
    meta, _ = load_vector(TESTKIT / "testdata" / "hybrid")
    [identity_s] = meta["identity"]
    first, second = age.HybridIdentity.parse(identity_s), age.HybridIdentity.parse(identity_s)
    assert first.recipient() == second.recipient()
    assert first.recipient().string.startswith("age1pq1")


def test_parse_recipient_and_identity_dispatch_on_type():
    x_identity_s, x_recipient_s = age.generate_x25519_identity()
    pq_identity_s, pq_recipient_s = age.generate_hybrid_identity()
    assert type(age.parse_recipient(x_recipient_s)) is age.X25519Recipient
    assert type(age.parse_recipient(pq_recipient_s)) is age.HybridRecipient
    assert type(age.parse_identity(x_identity_s)) is age.X25519Identity
    assert type(age.parse_identity(pq_identity_s)) is age.HybridIdentity
    with pytest.raises(ValueError, match="post-quantum"):
        age.X25519Recipient.parse(pq_recipient_s)
    with pytest.raises(ValueError, match="post-quantum") as excinfo:
        age.X25519Identity.parse(pq_identity_s)
    assert pq_identity_s[19:40] not in str(excinfo.value)
    with pytest.raises(ValueError, match="recipient"):
        age.HybridRecipient.parse(x_recipient_s)
    with pytest.raises(ValueError, match="identity"):
        age.HybridIdentity.parse(x_identity_s)
    with pytest.raises(ValueError, match="lowercase"):
        age.parse_recipient(pq_recipient_s.upper())
    with pytest.raises(ValueError, match="upper case"):
        age.parse_identity(pq_identity_s.lower())
    broken = pq_identity_s[:-1] + ("Q" if pq_identity_s[-1] != "Q" else "P")
    with pytest.raises(ValueError, match="checksum") as excinfo:
        age.parse_identity(broken)
    assert pq_identity_s[19:40] not in str(excinfo.value)
    for garbage in ["", "age1pq1", "not a key", x_identity_s]:
        with pytest.raises(ValueError, match="recipient"):
            age.parse_recipient(garbage)
    with pytest.raises(ValueError, match="ML-KEM-768 encapsulation key is malformed"):
        # Every coefficient of an encapsulation key must be reduced modulo q.
        age.parse_recipient(bech32.encode("age1pq", b"\xff" * 1216))
    with pytest.raises(ValueError, match="length"):
        age.parse_recipient(bech32.encode("age1pq", bytes(32)))


def test_hybrid_identity_file_round_trips():
    identity_s, recipient_s = age.generate_hybrid_identity()
    created = datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone.utc)
    text = age.format_identity_file(identity_s, recipient_s, created)
    assert text == f"# created: 2026-11-28T12:00:00Z\n# public key: {recipient_s}\n{identity_s}\n"
    [parsed] = age.parse_identities(text)
    assert isinstance(parsed, age.HybridIdentity)
    assert parsed.string == identity_s
    assert parsed.recipient().string == recipient_s
    with pytest.raises(ValueError):
        age.format_identity_file(identity_s, age.generate_hybrid_identity()[1], created)

    x_identity_s, _ = age.generate_x25519_identity()
    both = age.parse_identities(f"{text}\n# and a classic one\n{x_identity_s}\n")
    assert [type(i) for i in both] == [age.HybridIdentity, age.X25519Identity]
    broken = identity_s[:-1] + ("Q" if identity_s[-1] != "Q" else "P")
    with pytest.raises(ValueError, match="line 3") as excinfo:
        age.parse_identities(text.replace(identity_s, broken))
    assert identity_s[19:40] not in str(excinfo.value)


@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armor"])
@pytest.mark.parametrize("size", SIZES)
def test_hybrid_round_trip(size, armor):
    data = plaintext(size)
    ids = [new_hybrid_identity() for _ in range(2)]
    ciphertext = encrypt_in_pieces(data, [r for _, r, _ in ids], armor)
    if not armor:
        assert ciphertext.count(b"\n-> mlkem768x25519 ") == 2
    for identity, _, _ in ids:
        reader = age.decrypting_reader(io.BytesIO(ciphertext), [identity])
        assert read_in_pieces(reader) == data
    # Through an identity file, as a user would hold the key.
    identity_s = ids[1][2]
    text = age.format_identity_file(identity_s, ids[1][1].string, datetime.now(timezone.utc))
    assert age.decrypt(ciphertext, age.parse_identities(text)) == data


def test_hybrid_file_round_trip(tmp_path):
    identity, recipient, _ = new_hybrid_identity()
    src = tmp_path / "plain.bin"
    src.write_bytes(plaintext(5 * KIB64 + 3))
    age.encrypt_file(src, tmp_path / "file.age", [recipient])
    age.decrypt_file(tmp_path / "file.age", tmp_path / "out.bin", [identity])
    assert (tmp_path / "out.bin").read_bytes() == src.read_bytes()


def test_wrong_hybrid_identity_is_no_match():
    _, recipient, _ = new_hybrid_identity()
    stranger, _, stranger_s = new_hybrid_identity()
    ciphertext = age.encrypt(b"secret", [recipient])
    with pytest.raises(age.NoIdentityMatchedError) as excinfo:
        age.decrypting_reader(io.BytesIO(ciphertext), [stranger])
    assert stranger_s not in str(excinfo.value)
    with pytest.raises(age.NoIdentityMatchedError):
        age.decrypt(age.encrypt(b"x", [recipient], armor=True), [stranger])
    # Neither key type unwraps the other's stanzas.
    x_identity, x_recipient, _ = new_identity()
    with pytest.raises(age.NoIdentityMatchedError):
        age.decrypt(ciphertext, [x_identity])
    with pytest.raises(age.NoIdentityMatchedError):
        age.decrypt(age.encrypt(b"x", [x_recipient]), [stranger])


def test_hybrid_recipients_are_not_mixed_with_classic_ones():
    _, pq_recipient, _ = new_hybrid_identity()
    _, x_recipient, _ = new_identity()
    with pytest.raises(ValueError, match="post-quantum"):
        age.encrypt(b"x", [pq_recipient, x_recipient])
    with pytest.raises(ValueError, match="post-quantum"):
        age.encrypt(b"x", [x_recipient, pq_recipient])
    with pytest.raises(ValueError, match="only recipient"):
        age.encrypt(b"x", [age.ScryptRecipient(b"pw", work_factor=10), pq_recipient])


def test_hybrid_header_tampering_is_detected():
    identity, recipient, _ = new_hybrid_identity()
    ciphertext = age.encrypt(plaintext(100), [recipient])
    line_start = ciphertext.index(b"-> mlkem768x25519 ")
    arg_start = line_start + len(b"-> mlkem768x25519 ")
    data = bytearray(ciphertext)
    # Flipping a base64 character of the ML-KEM ciphertext yields a different
    # (implicitly rejected) shared secret, so the stanza simply does not match.
    data[arg_start + 10] = ord("A") if data[arg_start + 10] != ord("A") else ord("B")
    with pytest.raises(age.NoIdentityMatchedError):
        age.decrypt(bytes(data), [identity])
    line_end = ciphertext.index(b"\n", line_start)
    extra = ciphertext[:line_end] + b" extra" + ciphertext[line_end:]
    with pytest.raises(age.HeaderError, match="argument"):
        age.decrypt(extra, [identity])


# --------------------------------------------------------------------------
# Interoperability
# --------------------------------------------------------------------------


@needs_age_cli
@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armor"])
@pytest.mark.parametrize("size", [0, KIB64, 3 * KIB64 + 5])
def test_age_cli_decrypts_ours(tmp_path, size, armor):
    data = plaintext(size)
    keys = [new_identity() for _ in range(2)]
    src = tmp_path / "plain.bin"
    src.write_bytes(data)
    age.encrypt_file(src, tmp_path / "file.age", [r for _, r, _ in keys], armor=armor)
    for i, (_, _, identity_s) in enumerate(keys):
        id_file = write_identity_file(tmp_path / f"id{i}.txt", identity_s)
        assert run("age", "-d", "-i", id_file, tmp_path / "file.age") == data


@needs_age_cli
@pytest.mark.parametrize("size", [0, 1, KIB64, 3 * KIB64 + 5])
@pytest.mark.parametrize(
    "flags", [[], ["-a"]], ids=["binary", "armor"]
)
def test_ours_decrypts_age_cli(tmp_path, size, flags):
    data = plaintext(size)
    run("age-keygen", "-o", tmp_path / "a.txt")
    run("age-keygen", "-o", tmp_path / "b.txt")
    ids = {n: age.parse_identities((tmp_path / f"{n}.txt").read_text()) for n in "ab"}
    recipients = [ids[n][0].recipient().string for n in "ab"]
    single = run("age", *flags, "-r", recipients[0], stdin=data)
    both = run("age", *flags, "-r", recipients[0], "-r", recipients[1], stdin=data)
    assert single.startswith(b"-----BEGIN") == bool(flags)
    assert age.decrypt(single, ids["a"]) == data
    assert age.decrypt(both, ids["b"]) == data
    with pytest.raises(age.NoIdentityMatchedError):
        age.decrypt(single, ids["b"])


def test_pyrage_interoperates():
    pyrage = pytest.importorskip("pyrage")
    data = plaintext(2 * KIB64 + 1)
    identity, recipient, identity_s = new_identity()
    their_identity = pyrage.x25519.Identity.from_str(identity_s)
    their_recipient = pyrage.x25519.Recipient.from_str(recipient.string)

    for armor in (False, True):
        assert pyrage.decrypt(age.encrypt(data, [recipient], armor=armor), [their_identity]) == data
        assert age.decrypt(pyrage.encrypt(data, [their_recipient], armored=armor), [identity]) == data

    ours = age.encrypt(data, [age.ScryptRecipient(b"pass phrase", work_factor=10)])
    assert pyrage.passphrase.decrypt(ours, "pass phrase") == data
    theirs = pyrage.passphrase.encrypt(b"short", "pass phrase")
    assert age.decrypt(theirs, [age.ScryptIdentity(b"pass phrase")]) == b"short"


# --------------------------------------------------------------------------
# C2SP age testkit
# --------------------------------------------------------------------------

EXPECTED_ERRORS = {
    "header failure": age.HeaderError,
    "HMAC failure": age.HeaderError,
    "payload failure": age.PayloadError,
    "no match": age.NoIdentityMatchedError,
    "armor failure": age.ArmorError,
}


def load_vector(path: Path) -> tuple[dict[str, list[str]], bytes]:
    raw = path.read_bytes()
    head, _, body = raw.partition(b"\n\n")
    meta: dict[str, list[str]] = {}
    for line in head.decode("utf-8").split("\n"):
        key, _, value = line.partition(": ")
        meta.setdefault(key, []).append(value)
    if meta.get("compressed") == ["zlib"]:
        body = zlib.decompress(body)
    return meta, body


KNOWN_KEYS = {"expect", "payload", "file key", "identity", "passphrase", "armored", "comment", "compressed"}


def supported_vector(path: Path) -> bool:
    meta, _ = load_vector(path)
    # The testkit's rule for keys it may add later: skip the file.
    return not set(meta) - KNOWN_KEYS


def collect_testkit_vectors() -> list[Path]:
    testdata = TESTKIT / "testdata"
    return sorted(p for p in testdata.iterdir() if p.is_file() and supported_vector(p))


VECTORS = collect_testkit_vectors()


def test_testkit_vector_count():
    every_file = [p for p in (TESTKIT / "testdata").iterdir() if p.is_file()]
    assert len(VECTORS) == len(every_file) >= 143
    hybrid = [
        p for p in VECTORS if any(i.startswith("AGE-SECRET-KEY-PQ-") for i in load_vector(p)[0].get("identity", []))
    ]
    assert len(hybrid) >= 19


def reencrypted_payload(meta, body: bytes, data: bytes) -> tuple[bytes, bytes]:
    """Encrypt ``data`` again with the vector's file key and nonce; return (theirs, ours)."""
    theirs = body[header_end(body) :]
    randomness = [bytes.fromhex(meta["file key"][0]), os.urandom(32), theirs[:16]]
    # The payload depends only on the file key and nonce, so any X25519 recipient
    # will do (hybrid stanzas take their randomness from HPKE, not from ``rand``).
    recipient = age.X25519Identity.generate().recipient()
    ours = age.encrypt(data, [recipient], rand=lambda n: randomness.pop(0))
    return theirs, ours[header_end(ours) :]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda p: p.name)
def test_testkit_vectors(vector):
    meta, body = load_vector(vector)
    expect = meta["expect"][0]
    identities = [age.parse_identity(s) for s in meta.get("identity", [])]
    identities += [age.ScryptIdentity(p.encode("utf-8")) for p in meta.get("passphrase", [])]

    released = hashlib.sha256()
    data = bytearray()
    error = None
    try:
        reader = age.decrypting_reader(io.BytesIO(body), identities)
        while chunk := reader.read(KIB64):
            released.update(chunk)
            data += chunk
    except age.AgeError as exc:
        error = exc

    if expect == "success":
        assert error is None, f"{vector.name}: {error!r}"
    else:
        assert isinstance(error, EXPECTED_ERRORS[expect]), f"{vector.name}: expected {expect}, got {error!r}"
        if expect == "HMAC failure":
            assert "MAC" in str(error)
    if "payload" in meta:
        assert released.hexdigest() == meta["payload"][0]

    if expect == "success" and "armored" not in meta and "identity" in meta:
        # The reference payload must be reproducible bit for bit from the file key and nonce.
        theirs, ours = reencrypted_payload(meta, body, bytes(data))
        assert ours == theirs


@pytest.mark.parametrize("vector", VECTORS, ids=lambda p: p.name)
def test_testkit_vectors_through_decrypt_file(vector, tmp_path):
    # decrypt_file has its own bulk payload loop, so it gets the vectors too.
    meta, body = load_vector(vector)
    expect = meta["expect"][0]
    identities = [age.parse_identity(s) for s in meta.get("identity", [])]
    identities += [age.ScryptIdentity(p.encode("utf-8")) for p in meta.get("passphrase", [])]
    (tmp_path / "in.age").write_bytes(body)
    try:
        age.decrypt_file(tmp_path / "in.age", tmp_path / "out.bin", identities)
        error = None
    except age.AgeError as exc:
        error = exc
    if expect == "success":
        assert error is None, f"{vector.name}: {error!r}"
        assert hashlib.sha256((tmp_path / "out.bin").read_bytes()).hexdigest() == meta["payload"][0]
    else:
        assert isinstance(error, EXPECTED_ERRORS[expect]), f"{vector.name}: expected {expect}, got {error!r}"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.age"]
