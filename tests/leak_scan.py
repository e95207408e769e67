"""What must never leave the hub in the clear: the secret lines of a home's keys, and values that only ever
exist inside extracts. Tests write extracts holding MARKERS and then look for every needle everywhere else."""

from __future__ import annotations

from pathlib import Path

from borderx.dev.samples import TRAVELLER_FLOWS_COLUMNS, write_csv

# Values that only ever exist inside extracts: if they show up anywhere else, extract data leaked.
MARKERS = ["ZA-LEAK7", "QQLEAKQQ", "leaky.person@example.org"]


def secrets_of(home: Path) -> list[str]:
    public = [p.read_text() for p in (home / "keys").rglob("*") if p.is_file()
              and (p.name.endswith((".pub", ".pem")) or p.name == "allowed_signers")]
    found = []
    for path in (home / "keys").rglob("*"):
        if path.is_file() and not path.name.endswith((".pub", ".pem")) and path.name != "allowed_signers":
            for line in path.read_text().splitlines():
                line = line.strip()
                # A prefix of each secret line is enough to recognise it. An OpenSSH private key file holds its
                # public key too, and now and then a line's prefix falls wholly within it: that part is public.
                if line and not line.startswith(("#", "-----")) and not any(line[:40] in text for text in public):
                    found.append(line[:40])
    return found


def drop_marked(flows: Path) -> None:
    """A good extract and a bad one, each holding markers, in a traveller_flows intake folder."""
    write_csv(flows / "marked.csv", TRAVELLER_FLOWS_COLUMNS, [
        ["2026-11-02", "ZA-LEAK7", "ENTRY", "ZAF", "18-29", "F", "ROAD", "VISITOR", "17"],
        ["2026-11-02", "ZA-LEAK7", "EXIT", "ZAF", "18-29", "F", "ROAD", "VISITOR", "3"],
    ])
    write_csv(flows / "marked_bad.csv", TRAVELLER_FLOWS_COLUMNS, [
        ["2026-11-02", "ZA-BEI", "ENTRY", "QQLEAKQQ", "18-29", "F", "ROAD", "VISITOR", "17"],
        ["2026-11-02", "ZA-BEI", "EXIT", "ZAF", "18-29", "leaky.person@example.org", "ROAD", "VISITOR", "30"],
    ])


def assert_nothing_leaks(home: Path, haystacks: dict[str, str]) -> None:
    needles = MARKERS + secrets_of(home)
    assert len(needles) > len(MARKERS) + 5
    for where, text in haystacks.items():
        for needle in needles:
            assert needle not in text, f"{needle[:12]}... found in {where}"
        for forbidden in ("AGE-SECRET-KEY-", "BEGIN OPENSSH PRIVATE KEY"):
            assert forbidden not in text, f"{forbidden} in {where}"
