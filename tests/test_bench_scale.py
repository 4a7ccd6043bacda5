"""``latentzarr bench scale`` on a tiny store: every documented key, figures consistent with the store it built."""

from __future__ import annotations

import json

from click.testing import CliRunner

from latentzarr.cli import cli
from latentzarr.store import LatentStore

KEYS = ("ids", "cold_open_s", "rss_mb_after_open", "lookup_p50_ms", "lookup_p99_ms", "single_put_ids_per_s",
        "single_put_bytes_per_id", "batched_bytes_per_id", "index_bytes", "live_index_bytes", "info_s",
        "open_dataset_s")


def test_bench_scale_cli_json_and_reuse(tmp_path):
    out, store = tmp_path / "scale.json", tmp_path / "s.zarr"
    args = ["bench", "scale", "--ids", "40", "--json", str(out), "--store", str(store), "--writers", "2",
            "--single-puts", "6", "--lookups", "20", "--lag-commits", "2", "--verify"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert all(doc[k] is not None for k in KEYS), doc
    assert doc["ids"] == 40 and doc["ids_in_store"] == 40 and doc["built_ids"] == 40
    assert doc["verify_ok"] is True
    assert doc["single_put_ids"] == 6 and doc["single_put_processes_ids"] == 6
    assert 1 <= doc["single_put_commits"] <= 6
    assert doc["single_put_bytes_per_id_compacted"] <= doc["single_put_bytes_per_id"]
    assert doc["lookup_p50_ms"] <= doc["lookup_p99_ms"]
    assert 0 < doc["live_index_bytes"] <= doc["index_bytes"]
    assert doc["index_bytes_compacted"] <= 1.5 * doc["live_index_bytes_at_end"]
    assert "store[id] p50 (ms)" in result.output
    # The store holds the 40 built ids plus the commits of the refresh-lag reader; a rerun reuses it.
    assert len(LatentStore.open(store)) == 42
    result = CliRunner().invoke(cli, [*args[:-1], "--no-verify"])
    assert result.exit_code == 0, result.output
    again = json.loads(out.read_text())
    assert again["built_ids"] == 0 and again["ids_in_store"] == 42 and "verify_s" not in again


def test_bench_scale_rejects_zero_writers(tmp_path):
    result = CliRunner().invoke(cli, ["bench", "scale", "--ids", "5", "--json", str(tmp_path / "x.json"),
                                      "--writers", "0"])
    assert result.exit_code != 0
    assert "0 is not in the range 1<=x<=256" in result.output
