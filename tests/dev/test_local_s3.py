"""The demo's local S3 endpoint: moto behind a server that keeps connections alive, started and stopped with
its block."""

from __future__ import annotations

import socket

import boto3
import pytest
from botocore.config import Config

from borderx.dev.local_s3 import local_s3


def connections_made(monkeypatch) -> list:
    made = []
    connect = socket.socket.connect

    def counted(self, address):
        made.append(address)
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", counted)
    return made


def test_a_deliverys_requests_share_one_connection(monkeypatch):
    with local_s3() as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          config=Config(max_pool_connections=1))
        s3.create_bucket(Bucket="bx-local")
        made = connections_made(monkeypatch)
        for name in ("data.csv.age", "manifest.json", "manifest.json.sig"):
            s3.put_object(Bucket="bx-local", Key=f"d/{name}", Body=name.encode() * 100)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="bx-local")["Contents"]]
        body = s3.get_object(Bucket="bx-local", Key="d/manifest.json")["Body"].read()
    assert sorted(keys) == ["d/data.csv.age", "d/manifest.json", "d/manifest.json.sig"]
    assert body == b"manifest.json" * 100
    # Werkzeug's development server, moto's own, closes every connection: that was a connection per request.
    assert made == [], f"requests opened {len(made)} new connection(s)"


def test_the_endpoint_stops_with_its_block():
    with local_s3() as endpoint:
        port = int(endpoint.rsplit(":", 1)[1])
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_wrapper_sees_each_request_and_moto_still_answers():
    seen = []

    def wrap(app):
        def noted(environ, start_response):
            seen.append((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
            return app(environ, start_response)
        return noted

    with local_s3(wrap=wrap) as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket="bx-wrapped")
        s3.put_object(Bucket="bx-wrapped", Key="d/manifest.json.sig", Body=b"sig")
        body = s3.get_object(Bucket="bx-wrapped", Key="d/manifest.json.sig")["Body"].read()
    assert body == b"sig"
    assert ("PUT", "/bx-wrapped/d/manifest.json.sig") in seen
    assert ("GET", "/bx-wrapped/d/manifest.json.sig") in seen
