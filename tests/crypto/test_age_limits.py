"""age headers are bounded: a hostile file is refused while its header is read, before any key agreement."""

from __future__ import annotations

import io
import os
import time

import pytest

from borderx.cli import main
from borderx.crypto import age
from borderx.crypto.age.format import _MAX_HEADER_SIZE, _MAX_STANZAS, Stanza, b64encode_raw, encode_header


def _x25519_stanzas(count: int) -> list[Stanza]:
    return [Stanza("X25519", (b64encode_raw(os.urandom(32)).decode(),), os.urandom(32)) for _ in range(count)]


def _hostile(stanzas: list[Stanza]) -> bytes:
    # A header MAC under a key nobody has, then a nonce and a payload: the file is only ever refused.
    return encode_header(stanzas, os.urandom(16)) + os.urandom(16) + os.urandom(64)


def test_a_header_of_21399_x25519_stanzas_is_refused_while_it_is_read(tmp_path, capsys):
    hostile = _hostile(_x25519_stanzas(21_399))
    assert len(hostile) > 2 << 20
    identities = [age.X25519Identity.generate(), age.X25519Identity.generate()]
    started = time.perf_counter()
    with pytest.raises(age.HeaderLimitError, match=f"more than {_MAX_STANZAS} recipient stanzas"):
        age.decrypt(hostile, identities)
    with capsys.disabled():
        print(f"a 2 MiB header of 21,399 X25519 stanzas refused in {(time.perf_counter() - started) * 1000:.1f} ms")
    assert issubclass(age.HeaderLimitError, age.HeaderError)

    # The same file given to the recipient's command: refused at decryption, nothing written.
    src, identity, out = tmp_path / "data.csv.age", tmp_path / "age.key", tmp_path / "data.csv"
    src.write_bytes(hostile)
    identity.write_text(identities[0].string + "\n")
    assert main(["decrypt", str(src), "--no-verify", "--identity", str(identity), "--out", str(out),
                 "--home", str(tmp_path)]) == 1
    assert f"decrypt: data.csv.age: header has more than {_MAX_STANZAS} recipient stanzas" in capsys.readouterr().out
    assert not out.exists()


def test_a_file_at_the_stanza_cap_decrypts_and_one_over_it_is_not_written():
    ours = age.X25519Identity.generate()
    others = [age.X25519Identity.generate().recipient() for _ in range(_MAX_STANZAS - 1)]
    ciphertext = age.encrypt(b"period,travellers\n2026-11-01,3\n", [*others, ours.recipient()])
    assert age.decrypt(ciphertext, [ours]) == b"period,travellers\n2026-11-01,3\n"
    with pytest.raises(ValueError, match=f"at most {_MAX_STANZAS} recipients"):
        age.encrypt(b"x", [*others, ours.recipient(), age.X25519Identity.generate().recipient()])


def test_a_header_larger_than_the_cap_is_refused():
    hostile = _hostile([Stanza("grease", ("x",), os.urandom(_MAX_HEADER_SIZE))])
    with pytest.raises(age.HeaderLimitError, match=f"header is larger than {_MAX_HEADER_SIZE} bytes"):
        age.decrypting_reader(io.BytesIO(hostile), [age.X25519Identity.generate()])
