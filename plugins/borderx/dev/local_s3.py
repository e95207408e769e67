"""A local S3-compatible endpoint on 127.0.0.1 (the moto server), for the demo and single-machine runs."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Iterator

# moto accepts any credentials; these keep boto3 from looking further (instance metadata, SSO) for them.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "borderx-local", "AWS_SECRET_ACCESS_KEY": "borderx-local"}


@contextmanager
def local_s3(port: int = 0) -> Iterator[str]:
    """Serves S3 on 127.0.0.1 for the duration of the block; yields its endpoint URL."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    for name, value in LOCAL_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        host, bound = server.get_host_and_port()
        yield f"http://{host}:{bound}"
    finally:
        server.stop()
