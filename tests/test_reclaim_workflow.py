"""workflows/reclaim.py: a real store on disk shrinks after the lifecycle policy and a vacuum (real taef2 latents)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parents[1]


def _workflow():
    spec = importlib.util.spec_from_file_location("reclaim_wf", ROOT / "workflows" / "reclaim.py")
    wf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wf)
    return wf


def test_workflow_shrinks_a_real_store_and_keeps_every_id(tmp_path: Path, capsys, models_dir) -> None:
    wf = _workflow()
    out, store = tmp_path / "reclaim.json", tmp_path / "kept.zarr"
    # 24 objects at 64 px in shards of 8; a threshold every photo passes at 64 px, so the idle objects are rewritten
    rc = wf.main(["--objects", "24", "--px", "64", "--put-batch", "8", "--shard-images", "8", "--threshold", "30",
                  "--reference-requests", "0", "--store", str(store), "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    doc = json.loads(out.read_text())
    assert doc["params"]["objects"] == 24 and doc["params"]["shard_images"] == 8
    b = doc["bytes"]
    assert set(b) == {"lossless", "lifecycle", "vacuum"}
    for point in b.values():
        assert point["images"] == 24 and point["file_bytes"] > 0 and point["stored_bytes"] > 0
    life = doc["lifecycle"]
    assert life["rewritten"] > 0 and life["bytes_after"] < life["bytes_now"]
    assert b["lossless"]["lossy_images"] == 0 and b["vacuum"]["lossy_images"] == life["rewritten"]
    # the rewrite appends: more bytes than the baseline until the vacuum reclaims the old rows
    assert b["lifecycle"]["file_bytes"] > b["lossless"]["file_bytes"]
    assert b["vacuum"]["file_bytes"] < b["lifecycle"]["file_bytes"]
    assert b["vacuum"]["stored_bytes"] < b["lifecycle"]["stored_bytes"]
    vac = doc["vacuum"]
    assert vac["deleted_shards"] > 0 and vac["reclaimed_bytes"] > 0 and not vac["unreadable"]
    assert vac["stored_bytes_after"] == b["vacuum"]["stored_bytes"]
    checks = doc["checks"]
    assert checks["verify_ok"] and checks["verify"]["checked"] == checks["verify"]["ok"] == 24
    assert checks["untouched_bit_exact"] and checks["untouched"] == 24 - life["rewritten"] > 0
    assert checks["rewritten_exact"] and checks["rewritten"] == life["rewritten"]
    assert checks["vacuum_kept_digests"] and checks["all_ok"]
    assert doc["bar"]["ratio"] == b["vacuum"]["file_bytes"] / b["lossless"]["file_bytes"]
    assert "bar (" in text and "after vacuum" in text
    # the kept store agrees: every id reads back, the untouched ones as lossless, the rewritten ones as lossy
    from latentzarr.store import LatentStore

    st = LatentStore.open(store)
    assert len(st.ids()) == 24 and st.verify()["ok"] == 24
    assert sum(st.record(i)["lossy"] for i in st.ids()) == life["rewritten"]
    assert all(np.isfinite(x).all() for x in st.get_many(st.ids()))
    assert (tmp_path / "kept.zarr.lifecycle.jsonl").is_file()
    # a second run refuses to reuse the store; bad input is exit code 2
    assert wf.main(["--objects", "24", "--px", "64", "--store", str(store)]) == 2
    assert "Expected no file or folder" in capsys.readouterr().err
    assert wf.main(["--objects", "0"]) == 2
