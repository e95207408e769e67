"""What a notice is made of: the receipt's text is read back from the agency's folder only as the hub wrote
it; a bucket or TSA that does not answer is an outage."""

from __future__ import annotations

import pytest


def test_a_receipt_text_swapped_for_a_link_is_not_read(tmp_path):
    """An agency owns its folder: a link where its receipt's text was must not carry another file out."""
    import os
    from types import SimpleNamespace

    from borderx.home import Home
    from borderx.notices.posting import read_text

    home = Home(tmp_path)
    folder = tmp_path / "intake" / "ZA-DHA" / "receipts" / "flows"
    folder.mkdir(parents=True)
    secret = tmp_path / "keys" / "hub_key"
    secret.parent.mkdir()
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    rt = SimpleNamespace(home=home)
    (folder / "x.csv.receipt.txt").write_text("RECEIPT: x.csv ACCEPTED\n")
    assert read_text(rt, str(folder / "x.csv.receipt.json")) == "RECEIPT: x.csv ACCEPTED\n"
    (folder / "x.csv.receipt.txt").unlink()
    os.symlink(secret, folder / "x.csv.receipt.txt")
    assert read_text(rt, str(folder / "x.csv.receipt.json")) is None
    (folder / "x.csv.receipt.txt").unlink()
    os.link(secret, folder / "x.csv.receipt.txt")
    assert read_text(rt, str(folder / "x.csv.receipt.json")) is None, "a second name of another file"
    receipts = folder.parent
    os.rename(receipts, tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", receipts)
    assert read_text(rt, str(folder / "x.csv.receipt.json")) is None, "a linked folder on the way"



@pytest.mark.parametrize("error,service", [
    ("endpoint", "s3"), ("timestamping", "tsa"), ("no-space", None), ("config", None),
])
def test_which_failure_is_an_outage(error, service):
    from botocore.exceptions import EndpointConnectionError

    from borderx.errors import ConfigError, NoSpaceError, PublishError, TimestampingStopped
    from borderx.notices.posting import outage_service

    def raised(exc, cause=None):
        try:
            raise exc from cause
        except Exception as caught:
            return caught

    made = {
        "endpoint": raised(PublishError("delivery x: put failed"), EndpointConnectionError(endpoint_url="http://s3")),
        "timestamping": TimestampingStopped("publishing stopped"),
        "no-space": NoSpaceError("work folder: no space left"),
        "config": ConfigError(["config/settings.yaml: s3: bad"]),
    }
    assert outage_service(made[error]) == service
