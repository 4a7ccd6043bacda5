"""The object store of a replay: a local folder, or the moto S3 stand-in (a ``moto_server`` process on 127.0.0.1).

:func:`moto_object_store` starts ``python -m moto.server`` in its own process (so that serving GETs does not take
the replay client's CPU or GIL), makes a bucket, and yields fsspec ``storage_options`` for it; :func:`upload` copies
a local latent store and its image store there. The latency a real S3 adds is modelled separately, per GET, by
:class:`~latentzarr.store.latency.GetLatencyModel`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["moto_object_store", "upload"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def moto_object_store(bucket: str = "latentzarr-replay", *, timeout_s: float = 60.0
                      ) -> Iterator[dict[str, Any]]:
    """Run a moto S3 server on a free port of 127.0.0.1 with ``bucket``; yields its fsspec storage options.

    Credentials are dummies (moto accepts any); they are also put in this process's environment for the
    duration, so that child processes (Dask workers) reach the same endpoint.
    """
    try:
        import moto.server  # noqa: F401
        import s3fs
    except ImportError as exc:
        raise ImportError("Expected moto[server] and s3fs for the S3 stand-in. Got them missing; "
                          "pip install 'latentzarr[replay]', or replay on a local folder (--object-store local)."
                          ) from exc
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Expected moto_server to listen on {endpoint}. Got exit code "
                                       f"{proc.poll()!r} instead.") from None
                time.sleep(0.2)
        options = {"endpoint_url": endpoint, "key": "x", "secret": "x"}
        s3fs.S3FileSystem(**options).mkdir(bucket)
        yield options
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def upload(local: str | os.PathLike[str], url: str, storage_options: Mapping[str, Any]) -> str:
    """Copy the folder ``local`` (a latent store or an image store) to ``url``; returns ``url``."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(url, **dict(storage_options))
    fs.put(os.fspath(local).rstrip("/") + "/", root, recursive=True)
    return url
