"""``latentzarr vacuum``: dry run changes nothing, --grace 0 reclaims bytes and every id reads back bit-exact, the
default grace only marks, --json, and one-line errors for bad input. Real stores on disk, real processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from latentzarr.cli import cli
from latentzarr.store import LatentStore
from latentzarr.store.vacuum import DEFAULT_COMPACT_AT, DEFAULT_GRACE_S

REPORT_KEYS = {"dry_run", "grace_s", "compact_at", "shards", "stored_bytes_before", "stored_bytes_after",
               "compacted_shards", "relocated_ids", "relocated_bytes", "deleted_shards", "reclaimed_bytes",
               "waiting_shards", "waiting_bytes", "unreadable"}


def run(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "latentzarr", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=600)


def as_permission_checked_user() -> tuple[str, ...]:
    """A command prefix under which file permissions apply: none for a normal user; for root (CI runs as root),
    util-linux ``setpriv`` dropping the capabilities that let root write anywhere (so the test still runs)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        if os.environ.get("CI"):
            pytest.fail("running as root needs setpriv (util-linux) to test a read-only store")
        pytest.skip("running as root needs setpriv (util-linux) to test a read-only store")
    return (setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--")


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def garbage_store(tmp_path: Path, taef2_latents_64: np.ndarray) -> tuple[Path, dict[str, bytes]]:
    """A store of 16 real latents (two shards of 8); 11 of them rewritten at q8, so shard 0 is all garbage and
    shard 1 holds 3 garbage rows. Returns its path and each id's stored bytes after the rewrite."""
    path = tmp_path / "s.zarr"
    store = LatentStore.create(path, shard_images=8)
    latents = np.concatenate([taef2_latents_64, taef2_latents_64[::-1]])
    assert len(latents) == 16
    ids = [f"img-{k:02d}" for k in range(16)]
    store.put(ids, latents, model="taef2")
    k = 11
    store.rewrite(ids[:k], latents[:k], precision="q8")
    return path, stored_bytes(LatentStore.open(path))


def stored_bytes(store: LatentStore) -> dict[str, bytes]:
    """Each id's latent as the exact bytes the store returns (ids of several arrays: one get per id)."""
    return {i: store.get([i]).tobytes() for i in sorted(store.ids())}


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (size in bytes, mtime in ns) of every file under ``root``."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_dry_run_changes_no_file(garbage_store):
    path, before = garbage_store
    files = snapshot(path)
    proc = run("vacuum", str(path), "--dry-run", "--grace", "0", "--compact-at", "0.3")
    assert proc.returncode == 0, proc.stderr
    assert "DRY RUN" in proc.stdout and "would delete   2 shards" in proc.stdout
    assert "would compact  1 shards, 5 ids moved" in proc.stdout
    assert "scanned" in proc.stderr  # progress lines go to stderr
    assert snapshot(path) == files
    assert stored_bytes(LatentStore.open(path)) == before


def test_grace_zero_reclaims_and_every_id_reads_back_bit_exact(garbage_store):
    path, before = garbage_store
    size_before = sum(s for s, _ in snapshot(path).values())
    proc = run("vacuum", str(path), "--grace", "0", "--compact-at", "0.3", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert set(report) == REPORT_KEYS
    assert report["deleted_shards"] == 2 and report["compacted_shards"] == 1 and report["relocated_ids"] == 5
    assert report["reclaimed_bytes"] > 0 and report["stored_bytes_after"] < report["stored_bytes_before"]
    assert report["waiting_shards"] == 0 and report["unreadable"] == []
    assert sum(s for s, _ in snapshot(path).values()) < size_before
    store = LatentStore.open(path)
    assert stored_bytes(store) == before
    assert store.verify()["ok"] == 16
    # nothing left to do: a second run reclaims nothing
    again = json.loads(run("vacuum", str(path), "--grace", "0", "--json").stdout)
    assert again["deleted_shards"] == 0 and again["compacted_shards"] == 0


def test_default_grace_only_marks(garbage_store):
    path, before = garbage_store
    shards = {k for k in snapshot(path) if "/c/" in k}
    result = invoke("vacuum", str(path), "--compact-at", "1")  # no compaction: only the one all-garbage shard
    assert result.exit_code == 0, result.output
    assert "deleted        0 shards" in result.output
    assert "waiting        1 shards" in result.output and "grace period (1h)" in result.output
    assert {k for k in snapshot(path) if "/c/" in k} == shards
    report = json.loads(invoke("vacuum", str(path), "--grace", "1h", "--compact-at", "1", "--json").stdout)
    assert report["grace_s"] == 3600.0 and report["deleted_shards"] == 0 and report["reclaimed_bytes"] == 0
    assert report["waiting_shards"] == 1 and report["waiting_bytes"] > 0
    assert stored_bytes(LatentStore.open(path)) == before


@pytest.mark.parametrize(("text", "seconds"), [("0", 0.0), ("90", 90.0), ("1.5", 1.5), ("45s", 45.0),
                                               ("30m", 1800.0), ("1h", 3600.0), ("7d", 604800.0), ("2w", 1209600.0)])
def test_grace_durations(text: str, seconds: float, garbage_store):
    path, _ = garbage_store
    result = invoke("vacuum", str(path), "--grace", text, "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["grace_s"] == seconds


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grace", "-1"], "Expected a duration >= 0"),
        (["--grace", "-2h"], "Expected a duration >= 0"),
        (["--grace", "soon"], "Expected seconds or a duration like 30m, 1h, 7d. Got 'soon'"),
        (["--compact-at", "2"], "'--compact-at': 2.0 is not in the range 0<x<=1"),
        (["--compact-at", "0"], "'--compact-at': 0.0 is not in the range 0<x<=1"),
    ],
)
def test_bad_options_fail_with_one_line_reason(args: list[str], message: str, garbage_store):
    path, _ = garbage_store
    files = snapshot(path)
    proc = run("vacuum", str(path), *args)
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert snapshot(path) == files


def test_missing_store_fails_without_creating_one(tmp_path: Path):
    proc = run("vacuum", str(tmp_path / "nowhere"), "--grace", "0")
    assert proc.returncode == 1
    assert "Expected a latentzarr store" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "nowhere").exists()


def test_read_only_store_fails_with_one_line_reason(garbage_store):
    path, before = garbage_store
    prefix = as_permission_checked_user()
    dirs = [path, *(p for p in path.rglob("*") if p.is_dir())]
    for d in dirs:
        d.chmod(0o555)
    try:
        proc = run("vacuum", str(path), "--grace", "0", prefix=prefix)
    finally:
        for d in dirs:
            d.chmod(0o755)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert stored_bytes(LatentStore.open(path)) == before


def test_help_shows_the_library_defaults():
    from latentzarr.cli.vacuum import format_duration

    result = invoke("vacuum", "--help")
    assert result.exit_code == 0
    assert f"[default: {format_duration(DEFAULT_GRACE_S)}]" in result.output
    assert f"[default: {DEFAULT_COMPACT_AT:g}]" in result.output
    assert "latentzarr vacuum" in invoke("lifecycle", "--help").output
