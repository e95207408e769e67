"""One way to the bucket: S3 and SQS clients wait and retry alike, and the module stays light for recipients."""

from __future__ import annotations

import subprocess
import sys

from botocore.exceptions import ClientError

from borderx.bucket.client import Target
from borderx.config.models import S3Settings
from borderx.intake.sources.s3_uploads import sqs_client


def test_s3_and_sqs_clients_wait_and_retry_alike(monkeypatch):
    monkeypatch.setenv("BORDERX_S3_READ_TIMEOUT", "7")
    monkeypatch.setenv("BORDERX_S3_MAX_ATTEMPTS", "3")
    target = Target.resolve(S3Settings(), endpoint_url="http://127.0.0.1:9")
    for client in (target.client(), target.sqs(), sqs_client(target)):
        config = client.meta.config
        assert (config.read_timeout, config.connect_timeout) == (7.0, 10.0)
        assert config.retries == {"mode": "standard", "total_max_attempts": 3}
        assert client.meta.endpoint_url == "http://127.0.0.1:9"


def test_the_client_and_the_recipient_commands_import_no_hub_stack():
    code = ("import sys, borderx.bucket.client, borderx.recipient, borderx.cli.recipient_cmds\n"
            "print(sorted({m.split('.')[0] for m in sys.modules}\n"
            "             & {'airflow', 'great_expectations', 'pandas', 'pyarrow'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"



def test_only_the_hub_leaves_checking_its_parameters_to_the_endpoint(runtime):
    """Recipients' and auditors' clients keep botocore's check of what they send; the hub, which builds its
    parameters itself, sends them as they are (a sixth less CPU for a small PUT)."""
    import pytest
    from botocore.exceptions import ParamValidationError

    target = Target.resolve(S3Settings(), endpoint_url="http://127.0.0.1:9")
    with pytest.raises(ParamValidationError, match="MaxKeys"):
        target.client().list_objects_v2(Bucket=runtime.target.bucket, MaxKeys="ten")
    # The hub's client sends the same request: the endpoint is the one to answer it.
    with pytest.raises(ClientError):
        runtime.s3.list_objects_v2(Bucket=runtime.target.bucket, MaxKeys="ten")
