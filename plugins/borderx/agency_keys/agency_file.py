"""Writing key changes into a human-edited `config/agencies/AGENCY.yaml`.

With ruamel.yaml (installed with the hub: Great Expectations needs it) the file is edited in place: comments,
quoting and field order stay, and only the key lists change. Without it the file is rewritten with PyYAML,
keeping its field order and header comment; the caller is told the other comments were dropped. Either way
the result is checked against the agency schema before it replaces the file.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from borderx.crypto import sshsig
from borderx.errors import ConfigError

KINDS = {"age": "age_recipients", "ssh": "signing_keys"}


def key_id(kind: str, key: str) -> str:
    """What tells keys apart: an age recipient itself, an ssh key's fingerprint (its comment does not count)."""
    return sshsig.fingerprint(key) if kind == "ssh" else key


@dataclass
class KeyChanges:
    added: dict[str, list[dict]] = field(default_factory=lambda: {"age": [], "ssh": []})  # new entries, by kind
    ended: dict[str, dt.date] = field(default_factory=dict)  # key_id -> new valid_to
    revoked: set[str] = field(default_factory=set)  # key_ids


def _edit_entries(entries, kind: str, changes: KeyChanges, new_entry) -> None:
    for entry in entries:
        ident = key_id(kind, str(entry["key"]))
        if ident in changes.revoked:
            entry["revoked"] = True
        elif ident in changes.ended:
            _set_valid_to(entry, changes.ended[ident])
    entries.extend(new_entry(e) for e in changes.added[kind])


def _set_valid_to(entry, day: dt.date) -> None:
    if "valid_to" in entry or not hasattr(entry, "insert"):
        entry["valid_to"] = day
        return
    # Beside valid_from, where a person looks for it.
    at = list(entry).index("valid_from") + 1 if "valid_from" in entry else len(entry)
    entry.insert(at, "valid_to", day)


def _with_ruamel(text: str, changes: KeyChanges) -> str:
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 4096
    # One date shared by several entries would otherwise be written as a YAML anchor and aliases.
    rt.representer.ignore_aliases = lambda data: True
    if re.search(r"^[ \t]+- ", text, re.MULTILINE):
        rt.indent(mapping=2, sequence=4, offset=2)
    data = rt.load(text)
    for kind, name in KINDS.items():
        if not data.get(name):
            # Also replaces a flow-style `[]`, which would keep the new entries on one line.
            data[name] = CommentedSeq()
        _edit_entries(data[name], kind, changes, CommentedMap)
    out = io.StringIO()
    rt.dump(data, out)
    return out.getvalue()


def _leading_comments(text: str) -> tuple[str, bool]:
    lines = text.splitlines(keepends=True)
    n = 0
    while n < len(lines) and lines[n].lstrip().startswith("#"):
        n += 1
    # A '#' inside a quoted value is a false alarm here, which only costs a needless note.
    dropped = any(line.lstrip().startswith("#") or " #" in line for line in lines[n:])
    return "".join(lines[:n]), dropped


class _PlainDumper(yaml.SafeDumper):
    def ignore_aliases(self, data) -> bool:
        return True


def _with_pyyaml(text: str, changes: KeyChanges) -> tuple[str, bool]:
    data = yaml.safe_load(text)
    header, dropped = _leading_comments(text)
    for kind, name in KINDS.items():
        data[name] = data.get(name) or []
        _edit_entries(data[name], kind, changes, dict)
    return header + yaml.dump(data, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, width=1000), dropped


def edit_text(text: str, changes: KeyChanges, *, keep_comments: bool = True) -> tuple[str, bool]:
    """(the file's new text, whether comments inside it were dropped)."""
    if keep_comments:
        try:
            return _with_ruamel(text, changes), False
        except ImportError:
            pass
    return _with_pyyaml(text, changes)


def write_checked(path: Path, text: str, agency_id: str) -> None:
    """Replaces the file in one step, once `text` loads as an agency with the same id."""
    from pydantic import ValidationError

    from borderx.config.loader import Problem
    from borderx.config.models import Agency

    try:
        agency = Agency.model_validate(yaml.safe_load(text))
    except ValidationError as exc:
        raise ConfigError([Problem(str(path), ".".join(map(str, e["loc"])) or "-", e["msg"])
                           for e in exc.errors()]) from None
    if agency.id != agency_id:
        raise ConfigError([Problem(str(path), "id", f"would change from {agency_id} to {agency.id}")])
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
