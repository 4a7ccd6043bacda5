"""Every CLI command given a missing or invalid store: one ``Error:`` line in CLI terms, nothing created."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import zarr

STORE_COMMANDS = [
    ["ls", "{store}"],
    ["info", "{store}"],
    ["verify", "{store}"],
    ["export", "{store}", "{tmp}/out", "some-id"],
    ["batch-decode", "{store}", "{tmp}/train.zarr"],
    ["lifecycle", "{store}", "--days", "1", "--mode", "q8", "--min-psnr", "40", "--dry-run"],
    ["vacuum", "{store}", "--dry-run"],
    ["serve", "{store}", "--port", "0"],
    ["replay", "{store}", "synthetic:10", "--json", "{tmp}/r.json"],
]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "latentzarr", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=300)


@pytest.mark.parametrize("args", STORE_COMMANDS, ids=lambda a: a[0])
def test_missing_store_is_one_cli_line_and_creates_nothing(args: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.zarr"
    proc = run(*[a.format(store=missing, tmp=tmp_path) for a in args])
    assert proc.returncode == 1, proc.stderr
    want = (f"Error: Expected a latentzarr store at '{missing}'. Got no Zarr v3 group there instead. Create one with "
            f"`latentzarr ingest-images DIR {missing}`")
    # replay can also build a store of sample crops: its line says how instead of "(or check the path)"
    tail = ", or pass --objects N (or --quick) to build one from crops of the sample photos." \
        if args[0] == "replay" else " (or check the path)."
    assert proc.stderr.splitlines() == [want + tail], proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no store, no output folder, no image store


@pytest.mark.parametrize("args", [STORE_COMMANDS[1], STORE_COMMANDS[7]], ids=lambda a: a[0])
def test_other_zarr_data_is_one_cli_line(args: list[str], tmp_path: Path) -> None:
    other = tmp_path / "plain.zarr"
    zarr.open_group(str(other), mode="w", zarr_format=3)
    proc = run(*[a.format(store=other, tmp=tmp_path) for a in args])
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "Got a Zarr group without 'latentzarr' attributes instead" in proc.stderr
    assert "LatentStore.create" not in proc.stderr


def test_library_message_still_names_the_python_way(tmp_path: Path) -> None:
    from latentzarr.errors import NotALatentStoreError
    from latentzarr.store import LatentStore

    with pytest.raises(NotALatentStoreError, match=r"LatentStore.create\(") as info:
        LatentStore.open(tmp_path / "nowhere")
    assert info.value.url == str(tmp_path / "nowhere") and info.value.found == "no Zarr v3 group there"
