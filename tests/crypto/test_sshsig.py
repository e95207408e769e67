"""OpenSSH signatures: ours against ssh-keygen in both directions, and every refusal."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from borderx.crypto import sshsig

NAMESPACE = "borderx-manifest"
MESSAGE = b"manifest: 3 files\nsha256 of each...\n" * 50

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen not installed")


def ssh_keygen(*args: str | Path, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["ssh-keygen", *map(str, args)], input=stdin, capture_output=True, check=False)


def key_from_ssh_keygen(tmp_path: Path) -> tuple[Path, Ed25519PrivateKey, str]:
    path = tmp_path / "openssh_key"
    result = ssh_keygen("-q", "-t", "ed25519", "-N", "", "-C", "hub@openssh", "-f", path)
    assert result.returncode == 0, result.stderr
    key = sshsig.load_private_key(path.read_bytes())
    return path, key, path.with_suffix(".pub").read_text().strip()


def key_from_us(tmp_path: Path) -> tuple[Path, Ed25519PrivateKey, str]:
    pem, public_line = sshsig.generate_ed25519_keypair("hub@borderx")
    path = tmp_path / "our_key"
    path.write_bytes(pem)
    path.chmod(0o600)  # ssh-keygen refuses private keys others can read
    return path, sshsig.load_private_key(pem), public_line


@pytest.fixture(params=["ssh-keygen", "ours"])
def keypair(request, tmp_path):
    make = key_from_ssh_keygen if request.param == "ssh-keygen" else key_from_us
    return make(tmp_path)


def write_allowed_signers(tmp_path: Path, public_line: str) -> Path:
    path = tmp_path / "allowed_signers"
    path.write_text(sshsig.allowed_signers_line("hub", public_line) + "\n")
    return path


def test_generated_keypair_shape():
    pem, public_line = sshsig.generate_ed25519_keypair("ops@hub")
    assert pem.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----\n")
    key_type, blob, comment = public_line.split(" ")
    assert (key_type, blob[:4], comment) == ("ssh-ed25519", "AAAA", "ops@hub")
    assert sshsig.public_key_line(sshsig.load_private_key(pem), "ops@hub") == public_line
    assert sshsig.generate_ed25519_keypair()[1].count(" ") == 1


def test_ssh_keygen_reads_our_private_key(tmp_path):
    path, _, public_line = key_from_us(tmp_path)
    result = ssh_keygen("-y", "-f", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split()[:2] == public_line.split()[:2]


def test_fingerprint_matches_ssh_keygen(keypair, tmp_path):
    _, _, public_line = keypair
    pub_file = tmp_path / "key.pub"
    pub_file.write_text(public_line + "\n")
    result = ssh_keygen("-lf", pub_file)
    assert result.returncode == 0, result.stderr
    assert sshsig.fingerprint(public_line) == result.stdout.decode().split()[1]


def test_allowed_signers_line():
    _, public_line = sshsig.generate_ed25519_keypair("comment is dropped")
    key_type, blob = public_line.split()[:2]
    assert sshsig.allowed_signers_line("hub", public_line) == f'hub namespaces="borderx-manifest" {key_type} {blob}'
    for bad_principal in ("", "two words", '"quoted"', "#comment"):
        with pytest.raises(ValueError):
            sshsig.allowed_signers_line(bad_principal, public_line)
    with pytest.raises(ValueError):
        sshsig.allowed_signers_line("hub", public_line, namespaces='a" b')


def test_ssh_keygen_verifies_our_signature(keypair, tmp_path):
    _, key, public_line = keypair
    allowed = write_allowed_signers(tmp_path, public_line)
    sig_file = tmp_path / "message.sig"
    sig_file.write_text(sshsig.sign(key, MESSAGE, NAMESPACE))

    def ssh_verify(namespace: str, message: bytes) -> subprocess.CompletedProcess:
        return ssh_keygen(
            "-Y", "verify", "-f", allowed, "-I", "hub", "-n", namespace, "-s", sig_file, stdin=message
        )

    good = ssh_verify(NAMESPACE, MESSAGE)
    assert good.returncode == 0, good.stderr
    assert ssh_verify("other-namespace", MESSAGE).returncode != 0
    assert ssh_verify(NAMESPACE, MESSAGE + b"!").returncode != 0


@pytest.mark.parametrize("hash_alg", ["sha512", "sha256"])
def test_we_verify_ssh_keygen_signature(keypair, tmp_path, hash_alg):
    key_path, key, public_line = keypair
    message_file = tmp_path / "message"
    message_file.write_bytes(MESSAGE)
    result = ssh_keygen("-Y", "sign", "-f", key_path, "-n", NAMESPACE, "-O", f"hashalg={hash_alg}", message_file)
    assert result.returncode == 0, result.stderr
    theirs = message_file.with_suffix(".sig").read_text()

    sshsig.verify(public_line, MESSAGE, theirs, NAMESPACE)
    sshsig.verify_stream(public_line, io.BytesIO(MESSAGE), theirs, NAMESPACE)
    # Ed25519 is deterministic, so the armored text must match byte for byte.
    assert sshsig.sign(key, MESSAGE, NAMESPACE, hash_alg=hash_alg) == theirs
    with pytest.raises(sshsig.SignatureError, match="namespace"):
        sshsig.verify(public_line, MESSAGE, theirs, "other-namespace")


def test_sign_stream_equals_sign():
    key = Ed25519PrivateKey.generate()
    big = MESSAGE * 2000
    assert sshsig.sign_stream(key, io.BytesIO(big), NAMESPACE) == sshsig.sign(key, big, NAMESPACE)


def test_refusals():
    key = Ed25519PrivateKey.generate()
    public_line = sshsig.public_key_line(key)
    other_line = sshsig.public_key_line(Ed25519PrivateKey.generate())
    signature = sshsig.sign(key, MESSAGE, NAMESPACE)
    sshsig.verify(public_line, MESSAGE, signature, NAMESPACE)

    with pytest.raises(sshsig.SignatureError, match="namespace"):
        sshsig.verify(public_line, MESSAGE, signature, "borderx-other")
    with pytest.raises(sshsig.SignatureError, match="different key"):
        sshsig.verify(other_line, MESSAGE, signature, NAMESPACE)
    for pos in (0, len(MESSAGE) // 2, len(MESSAGE) - 1):
        changed = bytearray(MESSAGE)
        changed[pos] ^= 0x01
        with pytest.raises(sshsig.SignatureError, match="does not match the message"):
            sshsig.verify(public_line, bytes(changed), signature, NAMESPACE)

    lines = signature.split("\n")
    body = "".join(lines[1:-2])
    for pos in range(len(body)):
        replacement = "A" if body[pos] != "A" else "B"
        tampered_body = body[:pos] + replacement + body[pos + 1 :]
        tampered = "\n".join([lines[0], *(tampered_body[i : i + 70] for i in range(0, len(body), 70)), lines[-2], ""])
        with pytest.raises(sshsig.SignatureError):
            sshsig.verify(public_line, MESSAGE, tampered, NAMESPACE)

    for malformed in ("", "garbage", signature.replace("-----END SSH SIGNATURE-----", ""), signature.replace("U1NI", "U1N*")):
        with pytest.raises(sshsig.SignatureError):
            sshsig.verify(public_line, MESSAGE, malformed, NAMESPACE)


def test_errors_never_show_key_material():
    pem, public_line = sshsig.generate_ed25519_keypair()
    key = sshsig.load_private_key(pem)
    signature = sshsig.sign(key, b"m", NAMESPACE)
    blob = public_line.split()[1]
    for attempt in (
        lambda: sshsig.verify(sshsig.public_key_line(Ed25519PrivateKey.generate()), b"m", signature, NAMESPACE),
        lambda: sshsig.verify(public_line, b"x", signature, NAMESPACE),
        lambda: sshsig.verify(public_line, b"m", signature, "nope"),
    ):
        with pytest.raises(sshsig.SignatureError) as excinfo:
            attempt()
        assert blob not in str(excinfo.value) and blob[20:40] not in str(excinfo.value)
    mangled = pem.replace(pem[60:80], b"A" * 20)
    with pytest.raises(ValueError) as excinfo:
        sshsig.load_private_key(mangled)
    assert pem[40:100].decode() not in str(excinfo.value)


def test_load_private_key_formats_and_refusals(tmp_path):
    key = Ed25519PrivateKey.generate()
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert sshsig.public_key_line(sshsig.load_private_key(pkcs8)) == sshsig.public_key_line(key)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    )
    assert sshsig.public_key_line(sshsig.load_private_key(encrypted, b"pw")) == sshsig.public_key_line(key)
    with pytest.raises(ValueError, match="password"):
        sshsig.load_private_key(encrypted)
    with pytest.raises(ValueError, match="password"):
        sshsig.load_private_key(encrypted, b"wrong")

    rsa_path = tmp_path / "rsa"
    assert ssh_keygen("-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", rsa_path).returncode == 0
    with pytest.raises(ValueError, match="not an Ed25519 key"):
        sshsig.load_private_key(rsa_path.read_bytes())
    with pytest.raises(ValueError, match="not a readable"):
        sshsig.load_private_key(b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n")
    with pytest.raises(ValueError):
        sshsig.sign(key, b"m", "")
