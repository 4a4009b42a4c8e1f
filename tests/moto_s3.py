"""A loopback S3 server (moto) for tests of remote caches."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


@contextmanager
def s3_server() -> Iterator[dict[str, Any]]:
    """Start moto's S3 server on a free loopback port; yield the storage options."""
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield {"endpoint_url": f"http://{host}:{port}", "key": "testing", "secret": "testing"}
    finally:
        server.stop()


def new_bucket(options: dict[str, Any]) -> str:
    """Create an empty bucket on the server and return its name."""
    import fsspec

    fs = fsspec.filesystem("s3", **options)
    bucket = f"sweeps-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    return bucket
