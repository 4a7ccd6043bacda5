"""Errors say what happened, by type (issue 15.10): damaged data is ``CorruptDataError`` (restore from a backup), a
newer format is ``UnsupportedFormatError`` (upgrade), a bug stays itself; the HTTP endpoint answers 503 only for
what says the cluster is unavailable."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from latentzarr_codecs.errors import CorruptChunkError, UnsupportedVersionError

from latentzarr.errors import CorruptDataError, UnsupportedFormatError
from latentzarr.store.arrays import ArrayMeta, read_rows

META = ArrayMeta(name="m-4x8x8-float16", model="m", model_attrs={}, shape=(4, 8, 8), dtype="float16",
                 shard_images=4)


class Failing:
    """A Zarr array stand-in whose every read raises ``exc``."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __getitem__(self, key: object) -> np.ndarray:
        raise self.exc


@pytest.mark.parametrize(("raised", "expected", "words"), [
    (CorruptChunkError("Expected CRC-32 1. Got 2 instead"), CorruptDataError, "restore it from a backup"),
    (ValueError("Stored and computed checksum do not match"), CorruptDataError, "restore it from a backup"),
    (UnsupportedVersionError("Expected codec version <= 1. Got 9 instead"), UnsupportedFormatError, "upgrade"),
    (TypeError("unsupported operand"), TypeError, "unsupported operand"),          # a bug: shown as itself
    (AttributeError("no attribute 'x'"), AttributeError, "no attribute"),
    (ConnectionResetError("reset by peer"), ConnectionResetError, "reset by peer"),  # transient: retried above
])
def test_read_errors_are_classified_by_type(raised, expected, words) -> None:
    with pytest.raises(expected, match=words) as info:
        read_rows(Failing(raised), META, np.array([0, 2]), ["a", "b"])
    assert type(info.value) is expected or isinstance(info.value, (CorruptDataError, UnsupportedFormatError))
    if expected in (CorruptDataError, UnsupportedFormatError):
        assert "'a'" in str(info.value) and info.value.__cause__ is raised


# ---------------------------------------------------------------------------------------------- HTTP
class FakeLatentClient:
    """A connected-looking LatentClient whose reads raise what a test sets (status as Dask reports it)."""

    def __init__(self) -> None:
        self.client = SimpleNamespace(status="running")
        self.raise_: BaseException | None = None
        self.status_on_read = "running"

    async def read(self, *args: object, **kwargs: object) -> bytes:
        self.client.status = self.status_on_read
        raise self.raise_


@pytest.fixture
def app_client(tmp_path: Path):
    from starlette.testclient import TestClient

    from latentzarr.http import create_app
    from latentzarr.store import LatentStore

    st = LatentStore.create(tmp_path / "s.zarr")
    st.put(["a"], np.zeros((1, 4, 8, 8), np.float16), model="m")
    fake = FakeLatentClient()
    with TestClient(create_app(str(tmp_path / "s.zarr"), latent_client=fake), raise_server_exceptions=False) as c:
        yield c, fake


def test_http_status_is_chosen_by_type_not_by_text(app_client) -> None:
    from distributed.client import ClosedClientError

    client, fake = app_client

    def get(exc: BaseException, status_on_read: str = "running"):
        fake.raise_, fake.status_on_read, fake.client.status = exc, status_on_read, "running"
        return client.get("/v1/images/a", params={"size": 32})

    r = get(RuntimeError("the file handle was closed"))  # a bug whose text says "closed": not the cluster
    assert (r.status_code, r.json()["error"]) == (500, "internal")
    r = get(ClosedClientError("Trying to run in a closed client"))
    assert r.status_code == 503 and int(r.headers["retry-after"]) > 0
    r = get(RuntimeError("ConnectionPool is not running"), status_on_read="closed")  # the client went away
    assert r.status_code == 503 and r.json()["error"] == "unavailable"
    r = get(CorruptDataError("Expected readable data for image id 'a'. Got ValueError instead."))
    assert (r.status_code, r.json()["error"]) == (500, "corrupt")
    r = get(UnsupportedFormatError("Expected chunk data this latentzarr can read; upgrade"))
    assert (r.status_code, r.json()["error"]) == (500, "unsupported_format") and "upgrade" in r.json()["detail"]
