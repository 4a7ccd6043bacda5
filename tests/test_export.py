"""Export: ids and the rendition are checked before anything is decoded or written; exporting again into the
same folder adds to its index instead of dropping earlier entries (issue 15.8, 15.11)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from latentzarr.errors import InvalidRenditionError, UnknownIdError
from latentzarr.export import export_images
from latentzarr.store import LatentStore


@pytest.fixture
def store(tmp_path: Path, taef2_latents_64) -> LatentStore:
    st = LatentStore.create(tmp_path / "s.zarr")
    st.put(["a", "b", "c"], taef2_latents_64[:3], model="taef2")
    return st


def test_export_again_merges_the_index(store: LatentStore, tmp_path: Path, taef2) -> None:
    out = tmp_path / "out"
    export_images(store, ["a"], out, model=taef2)
    export_images(store, ["b", "c"], out, format="webp", model=taef2)
    index = json.loads((out / "index.json").read_text())
    assert {i: e["file"] for i, e in index.items()} == {"a": "00000-a.png", "b": "00001-b.webp", "c": "00002-c.webp"}
    export_images(store, ["b"], out, model=taef2)  # b again, as PNG: replaces its own earlier file
    index = json.loads((out / "index.json").read_text())
    assert index["b"]["file"] == "00001-b.png" and set(index) == {"a", "b", "c"}
    assert sorted(p.name for p in out.iterdir()) == ["00000-a.png", "00001-b.png", "00002-c.webp", "index.json"]


def test_a_foreign_index_is_refused(store: LatentStore, tmp_path: Path, taef2) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "index.json").write_text('["user data"]')
    with pytest.raises(FileExistsError, match="not an export index"):
        export_images(store, ["a"], out, model=taef2)
    assert (out / "index.json").read_text() == '["user data"]' and len(list(out.iterdir())) == 1


def test_unknown_ids_and_bad_renditions_write_nothing(store: LatentStore, tmp_path: Path, taef2) -> None:
    out = tmp_path / "out"
    with pytest.raises(UnknownIdError, match=r"'nosuch'.*\(nor is 'other'\); nothing was exported"):
        export_images(store, ["a", "nosuch", "other"], out, model=taef2)
    with pytest.raises(InvalidRenditionError):
        export_images(store, ["a"], out, format="png", quality=50, model=taef2)
    assert not out.exists()


def test_cli_unknown_id_shows_no_decode_bar_and_leaves_no_folder(store: LatentStore, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "latentzarr", "export", store.url, str(out), "nosuchid"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"Error: Unknown image id 'nosuchid': it is not in the store '{store.url}'; "
                                        "nothing was exported."]
    assert not out.exists()
