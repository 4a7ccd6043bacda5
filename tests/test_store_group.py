"""Group commit (``LatentStore.writer``): single-id puts of many threads share commits; nothing acknowledged is lost,
even when the writing process is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest

from latentzarr.errors import DuplicateIdError, InvalidIdError, InvalidLatentError
from latentzarr.store import GroupWriter, LatentStore

SHAPE = (4, 8, 8)


def latent_for(image_id: str, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    """A deterministic float16 latent derived from the id, so any process can recompute what was written."""
    return np.random.default_rng(zlib.crc32(image_id.encode())).standard_normal(shape).astype(np.float16)


def assert_stored(store: LatentStore, ids: list[str]) -> None:
    store.refresh()
    missing = [i for i in ids if i not in store]
    assert not missing, f"acknowledged ids lost: {missing[:5]}"
    for i in ids:
        assert np.array_equal(store[i].view(np.uint16), latent_for(i).view(np.uint16)), i


def test_threads_share_commits_and_every_put_is_committed(tmp_path: Path) -> None:
    store = LatentStore.create(tmp_path / "s.zarr", shard_images=16)
    errors: list[BaseException] = []
    with store.writer() as writer:
        def work(t: int) -> None:
            try:
                for k in range(12):
                    writer.put(f"t{t}-{k}", latent_for(f"t{t}-{k}"), model="m", source_bytes=100 + k)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    ids = [f"t{t}-{k}" for t in range(6) for k in range(12)]
    assert writer.committed == len(ids) and writer.commits <= len(ids)
    reader = LatentStore.open(tmp_path / "s.zarr")
    assert sorted(reader.ids()) == sorted(ids)
    assert_stored(reader, ids)
    assert reader.record("t3-5")["source_bytes"] == 105


def test_buffered_puts_land_in_one_commit(tmp_path: Path) -> None:
    """max_ids pending start a flush at once; the long max_wait_s never passes, so they are one commit."""
    store = LatentStore.create(tmp_path / "s.zarr")
    ids = [f"b{k}" for k in range(20)]
    with store.writer(max_ids=20, max_wait_s=600) as writer:
        futures = [writer.submit(i, latent_for(i), model="m") for i in ids]
        for f in futures:
            assert f.result(timeout=60) is None
        assert writer.commits == 1
    assert_stored(LatentStore.open(tmp_path / "s.zarr"), ids)
    rows = sorted(store.record(i)["row"] for i in ids)
    assert rows == list(range(20)), "one batch fills consecutive rows of shared shards"


def test_close_flushes_pending_puts(tmp_path: Path) -> None:
    store = LatentStore.create(tmp_path / "s.zarr")
    writer = store.writer(max_ids=1000, max_wait_s=600)
    futures = [writer.submit(f"c{k}", latent_for(f"c{k}"), model="m") for k in range(5)]
    writer.close()
    assert all(f.done() and f.exception() is None for f in futures)
    assert_stored(LatentStore.open(tmp_path / "s.zarr"), [f"c{k}" for k in range(5)])
    with pytest.raises(RuntimeError, match="Expected an open GroupWriter"):
        writer.submit("late", latent_for("late"), model="m")
    writer.close()  # idempotent


def test_duplicates_fail_alone(tmp_path: Path) -> None:
    store = LatentStore.create(tmp_path / "s.zarr")
    store.put(["taken"], latent_for("taken")[None], model="m")
    other = LatentStore.open(tmp_path / "s.zarr", mode="a")  # does not know "taken" until it refreshes
    with other.writer(max_ids=4, max_wait_s=600) as writer:
        futures = {i: writer.submit(i, latent_for(i), model="m") for i in ("new1", "taken", "new2")}
        twice = writer.submit("new1", latent_for("new1"), model="m")
        futures["new3"] = writer.submit("new3", latent_for("new3"), model="m")
    with pytest.raises(DuplicateIdError, match="already waiting to be committed"):
        twice.result()
    with pytest.raises(DuplicateIdError, match="'taken'"):
        futures.pop("taken").result()
    for f in futures.values():
        assert f.result() is None
    assert_stored(LatentStore.open(tmp_path / "s.zarr"), ["new1", "new2", "new3", "taken"])


def test_different_shapes_go_to_their_own_arrays(tmp_path: Path) -> None:
    store = LatentStore.create(tmp_path / "s.zarr")
    small, big = latent_for("s", (4, 8, 8)), latent_for("g", (4, 16, 16))
    with store.writer(max_ids=2, max_wait_s=600) as writer:
        a = writer.submit("s", small, model="m")
        b = writer.submit("g", big, model="m")
    assert a.result() is None and b.result() is None
    assert len(store.arrays()) == 2
    assert np.array_equal(store["g"].view(np.uint16), big.view(np.uint16))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"image_id": 7}, InvalidIdError, "Expected one id as a str. Got int 7 instead."),
        ({"image_id": ""}, InvalidIdError, "Expected"),
        ({"latent": np.full(SHAPE, np.nan, np.float16)}, InvalidLatentError, "Expected finite latents"),
        ({"model": ""}, InvalidLatentError, "Expected a model id"),
        ({"source_bytes": -1}, ValueError, "Expected source_bytes as bytes >= 0 or None. Got -1 instead."),
    ],
)
def test_bad_input_raises_at_submit(tmp_path: Path, kwargs: dict, error: type, message: str) -> None:
    store = LatentStore.create(tmp_path / "s.zarr")
    args = {"image_id": "ok", "latent": latent_for("ok"), "model": "m", **kwargs}
    with store.writer() as writer, pytest.raises(error, match=message):
        writer.submit(args.pop("image_id"), args.pop("latent"), **args)
    assert len(LatentStore.open(tmp_path / "s.zarr")) == 0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_ids": 0}, "Expected max_ids as an integer >= 1. Got 0 instead."),
    ({"max_wait_s": -1}, "Expected max_wait_s as seconds >= 0. Got -1 instead."),
])
def test_bad_writer_settings(tmp_path: Path, kwargs: dict, message: str) -> None:
    store = LatentStore.create(tmp_path / "s.zarr")
    with pytest.raises(ValueError, match=message):
        GroupWriter(store, **kwargs)


def test_read_only_store_has_no_writer(tmp_path: Path) -> None:
    LatentStore.create(tmp_path / "s.zarr")
    with pytest.raises(PermissionError, match="mode='a'"):
        LatentStore.open(tmp_path / "s.zarr").writer()


_KILLED_WRITER = r"""
import sys, threading
sys.path.insert(0, sys.argv[2])
from test_store_group import latent_for
from latentzarr.store import LatentStore

store = LatentStore.open(sys.argv[1], mode="a")
writer = store.writer()
lock = threading.Lock()

def work(t):
    k = 0
    while True:
        image_id = f"p{t}-{k}"
        writer.put(image_id, latent_for(image_id), model="m")
        with lock:  # acknowledged: the put returned, so the id must survive anything from here on
            print(image_id, flush=True)
        k += 1

for t in range(4):
    threading.Thread(target=work, args=(t,), daemon=True).start()
threading.Event().wait()
"""


def test_killed_writer_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """A process with 4 threads putting through one writer is SIGKILLed mid-stream: every id it acknowledged is
    committed bit-exactly, the store opens, and a new writer carries on."""
    path = tmp_path / "s.zarr"
    LatentStore.create(path, shard_images=8)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(path), str(Path(__file__).parent)],
                            stdout=subprocess.PIPE, text=True, env=env)
    acked = []
    assert proc.stdout is not None
    for line in proc.stdout:
        acked.append(line.strip())
        if len(acked) >= 60:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    acked += [line.strip() for line in proc.stdout.read().splitlines() if line.strip()]
    assert len(acked) >= 60
    store = LatentStore.open(path, mode="a")
    assert_stored(store, acked)
    committed = store.ids()
    assert len(committed) == len(set(committed))
    with store.writer() as writer:
        writer.put("after", latent_for("after"), model="m")
    assert store.verify()["ok"] == len(committed) + 1
