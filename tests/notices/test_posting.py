"""What a notice is made of: the receipt's text as the hub issued it, never read back from the agency's folder;
a bucket or TSA that does not answer is an outage."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_the_providers_notice_is_the_receipt_as_the_hub_issued_it_whatever_the_agency_folder_holds(
        runtime, tmp_path):
    """An agency owns its folder: nothing it puts there, in place of its receipt's text or of the folder itself,
    travels in a notice from the hub. The text is the one the hub rendered when it issued the receipt."""
    import json
    import os

    from borderx.intake.receipts import Receipt, issue
    from borderx.notices import after_receipt
    from borderx.notices.outbox import outbox_of

    sha256 = "ab" * 32
    receipt = Receipt("ZA-DHA", "traveller_flows", "x.csv", sha256, 12, "2026-12-01T10:00:00Z", "accepted",
                      deliveries=[{"agreement": "DSA-2026-001", "recipient": "ZA-SARS", "delivery_id": "d1",
                                   "status": "published"}])
    issued = issue(runtime, receipt)
    written = Path(issued.where[: -len(".json")] + ".txt")
    assert issued.text == written.read_text(encoding="utf-8")
    assert issued.text.startswith("RECEIPT: x.csv ACCEPTED") and sha256 in issued.text

    secret = tmp_path / "hub_key"
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    written.unlink()
    os.symlink(secret, written)
    after_receipt(runtime, receipt, issued.text)

    receipts = written.parent.parent
    os.rename(receipts, tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", receipts)
    duplicate = Receipt("ZA-DHA", "traveller_flows", "x.csv", "cd" * 32, 12, "2026-12-01T11:00:00Z", "quarantined",
                        reasons=[{"rule": "duplicate", "message": "seen before"}])
    again = issue(runtime, duplicate)
    assert again.where is None, "not written through a linked folder"
    assert again.text.startswith("RECEIPT: x.csv QUARANTINED") and "[duplicate] seen before" in again.text
    after_receipt(runtime, duplicate, again.text)

    told = [e["notice"] for e in outbox_of(runtime.home).waiting() if e["notice"]["audience"] == "provider"]
    assert [n["text"] for n in told] == [issued.text, again.text]
    assert all("PRIVATE KEY" not in json.dumps(e) for e in outbox_of(runtime.home).waiting())


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
