"""A local RFC 3161 authority for the audit tests (the same one `borderx demo` starts), and a home using it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from borderx.dev.tsa import Authority, local_tsa


@pytest.fixture(scope="session")
def tsa(tmp_path_factory):
    """(url, authority) of a TSA on 127.0.0.1 for the whole session."""
    with local_tsa(tmp_path_factory.mktemp("tsa")) as served:
        yield served


def use_tsa(home_root: Path, url: str, authority: Authority, **audit) -> Path:
    """Points the home's settings at the TSA, with its CA in keys/tsa-ca.pem; returns that file."""
    ca = home_root / "keys" / "tsa-ca.pem"
    shutil.copyfile(authority.ca_certificate, ca)
    path = home_root / "config" / "settings.yaml"
    settings = yaml.safe_load(path.read_text(encoding="utf-8"))
    settings["audit"] = {**audit, "tsa": {"url": url, "ca_certificate": "keys/tsa-ca.pem", "policy": authority.policy}}
    path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return ca
