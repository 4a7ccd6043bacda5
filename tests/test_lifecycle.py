"""The lifecycle policy on a real store: real taef2 latents of 64x64 photos, real decodes, a real crash.

Policy: ids not read for 30 days are rewritten at q8 when the PSNR of their decode against the lossless decode
stays >= T dB; everything else must stay bit-exact and lossless.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from latentzarr.errors import CorruptDataError
from latentzarr.lifecycle import apply_lifecycle, plan_lifecycle, read_journal
from latentzarr.precision import roundtrip
from latentzarr.store import LatentStore

IDS = [f"img-{i}" for i in range(8)]
NOW = datetime.now(UTC) + timedelta(days=100)  # the policy's clock: every id was ingested ~100 days "ago"
OLD = {i: NOW - timedelta(days=40) for i in IDS[:4]}  # read 40 days ago
RECENT = {i: NOW - timedelta(days=1) for i in IDS[4:6]}  # read yesterday; IDS[6:] never read
ACCESS = {**OLD, **RECENT}
COLD = IDS[:4] + IDS[6:]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Decode on one thread: on a shared, busy CPU two spinning OpenMP threads made a decode ~40x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def snapshot(path: Path) -> dict[str, tuple[int, int]]:
    """Every file of a store with its size and mtime (ns)."""
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(path.rglob("*")) if p.is_file() and p.name != ".latentzarr.lock"}


@pytest.fixture
def store(tmp_path, taef2_latents_64):
    st = LatentStore.create(tmp_path / "s.zarr", shard_images=8)
    st.put(IDS, taef2_latents_64, model="taef2")
    return st


def plan(store, min_psnr: float, **kw):
    return plan_lifecycle(store, ACCESS, days=30, mode="q8", min_psnr=min_psnr, model="taef2", now=NOW, **kw)


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint16)


def test_plan_picks_cold_lossless_ids_of_the_model(store, taef2_latents_64):
    p = plan(store, 30)
    assert sorted(c.id for c in p.candidates) == sorted(COLD)
    assert p.skipped == {"recent": 2, "lossy": 0, "other_model": 0}
    assert p.bytes_now == sum(store.encoded_size(i) for i in COLD)
    store.put(["other"], taef2_latents_64[:1], model="not-taef2")
    store.put(["lossy"], taef2_latents_64[:1], model="taef2", precision="q8")
    assert plan(store, 30).skipped == {"recent": 2, "lossy": 1, "other_model": 1}
    with pytest.raises(ValueError, match="lossy"):
        plan_lifecycle(store, ACCESS, days=30, mode="lossless", min_psnr=30, model="taef2")


def test_policy_demotes_only_old_ids_that_pass(store, taef2, taef2_latents_64, tmp_path):
    dry = apply_lifecycle(store, plan(store, 0), report_path=None, dry_run=True, decoder=taef2, echo=None)
    psnr = {e_id: None for e_id in COLD}
    reference = taef2.decode(taef2_latents_64)
    lossy, _ = roundtrip(taef2_latents_64, "q8", dtype=np.float16)
    test = taef2.decode(lossy)
    from skimage.metrics import peak_signal_noise_ratio

    for i, image_id in enumerate(IDS):
        if image_id in psnr:
            psnr[image_id] = peak_signal_noise_ratio(reference[i], test[i], data_range=255)
    assert dry.checked == 6 and dry.rewritten == 6 and dry.psnr_min == pytest.approx(min(psnr.values()), abs=1e-3)
    threshold = float(np.median(list(psnr.values())))  # about half pass
    passing = {i for i, v in psnr.items() if v >= threshold}
    assert 0 < len(passing) < len(COLD)

    report_path = tmp_path / "report.jsonl"
    report = apply_lifecycle(store, plan(store, threshold), report_path=report_path, decoder=taef2, echo=None)
    assert report.rewritten == len(passing) and report.kept == len(COLD) - len(passing)
    assert 0 < report.bytes_after < report.bytes_now
    for i, image_id in enumerate(IDS):
        rec = store.record(image_id)
        if image_id in passing:
            assert rec["precision"] == "q8" and rec["lossy"]
            assert np.array_equal(bits(store.get_one(image_id)), bits(lossy[i]))
        else:  # recent, or failed the check: untouched, bit-exact, lossless
            assert rec["precision"] == "lossless" and not rec["lossy"]
            assert np.array_equal(bits(store.get_one(image_id)), bits(taef2_latents_64[i]))
    assert store.verify()["ok"] == len(IDS)
    journal = read_journal(report_path)
    assert {i for i, e in journal.items() if e["status"] == "rewritten"} == passing
    assert all(e["psnr"] < threshold for e in journal.values() if e["status"] == "kept")
    assert json.loads(report_path.read_text().splitlines()[-1])["summary"]["rewritten"] == len(passing)


def test_a_failed_check_leaves_the_store_untouched(store, taef2, taef2_latents_64, tmp_path):
    before = snapshot(Path(store.url))
    report = apply_lifecycle(store, plan(store, 200), report_path=tmp_path / "r.jsonl", decoder=taef2, echo=None)
    assert report.checked == 6 and report.rewritten == 0 and report.kept == 6 and sorted(report.kept_ids) == COLD
    assert snapshot(Path(store.url)) == before
    fresh = LatentStore.open(store.url)
    assert np.array_equal(bits(fresh.get(IDS)), bits(taef2_latents_64))
    assert all(fresh.record(i)["precision"] == "lossless" for i in IDS)


def test_dry_run_writes_nothing_and_says_what_it_would_save(store, taef2, tmp_path):
    before = snapshot(Path(store.url))
    lines: list[str] = []
    report = apply_lifecycle(store, plan(store, 0), report_path=tmp_path / "r.jsonl", dry_run=True, decoder=taef2,
                             echo=lines.append)
    assert report.dry_run and report.rewritten == 6 and report.bytes_saved > 0
    assert report.bytes_now == sum(store.encoded_size(i) for i in COLD)
    assert snapshot(Path(store.url)) == before and not (tmp_path / "r.jsonl").exists()
    assert "would stay lossless" in lines[-1] and str(report.bytes_saved) in lines[-1]


def test_ids_a_vacuum_moved_since_the_plan_are_still_demoted(store, taef2, tmp_path):
    p = plan(store, 0)
    assert sorted(c.id for c in p.candidates) == sorted(COLD)
    store.rewrite(IDS[4:6], store.get(IDS[4:6]), precision="q8")  # 2 of the shard's 8 rows become garbage
    assert store.vacuum(grace=0, compact_at=0.1).relocated_ids == 6  # the other ids move to new rows, lossless
    assert all(store.record(c.id)["row"] != c.row for c in p.candidates)
    report = apply_lifecycle(store, p, report_path=tmp_path / "r.jsonl", decoder=taef2, echo=None)
    assert report.rewritten == len(COLD) and report.skipped == 0
    assert all(store.record(i)["precision"] == "q8" for i in COLD) and store.verify()["ok"] == 8


def test_resume_skips_done_ids(store, taef2, tmp_path):
    report_path = tmp_path / "r.jsonl"
    full = plan(store, 0)
    first = apply_lifecycle(store, dataclasses.replace(full, candidates=full.candidates[:2]),
                            report_path=report_path, decoder=taef2, echo=None)
    assert first.rewritten == 2
    digests = {c.id: store.record(c.id)["latent_sha256"] for c in full.candidates[:2]}
    second = apply_lifecycle(store, full, report_path=report_path, decoder=taef2, echo=None)
    assert second.resumed == 2 and second.checked == 4 and second.rewritten == 4
    assert {c.id: store.record(c.id)["latent_sha256"] for c in full.candidates[:2]} == digests
    third = apply_lifecycle(store, full, report_path=report_path, decoder=taef2, echo=None)
    assert third.resumed == 6 and third.checked == 0
    # a fresh plan has nothing left to do: the rewritten ids are no longer lossless
    assert plan(store, 0).candidates == [] and plan(store, 0).skipped["lossy"] == 6


CRASH = textwrap.dedent("""
    import os, signal, sys
    from datetime import datetime
    from latentzarr.lifecycle import apply_lifecycle, plan_lifecycle
    from latentzarr.store import LatentStore
    from latentzarr.store.index import MOVE, IdIndex

    original = IdIndex.commit

    def commit(self, table, *, kind=None):
        if kind == MOVE:  # the new rows are written and checked; die before the index commit lands
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, table, kind=kind)

    IdIndex.commit = commit
    store = LatentStore.open(sys.argv[1], mode="a")
    plan = plan_lifecycle(store, None, days=30, mode="q8", min_psnr=0, model="taef2",
                          now=datetime.fromisoformat(sys.argv[3]))
    apply_lifecycle(store, plan, report_path=sys.argv[2], echo=None)
""")


def test_a_crash_mid_rewrite_leaves_the_old_objects_readable(store, taef2, taef2_latents_64, tmp_path):
    report_path = tmp_path / "r.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", CRASH, store.url, str(report_path), NOW.isoformat()],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    after = LatentStore.open(store.url)
    arrays = {a["name"]: a for a in after.arrays()}
    q8 = arrays["taef2-32x8x8-float16-q8"]  # the new rows were written ...
    assert q8["rows"] > 0 and q8["images"] == 0  # ... but no id points at them
    assert all(after.record(i)["precision"] == "lossless" for i in IDS)
    assert np.array_equal(bits(after.get(IDS)), bits(taef2_latents_64))
    assert after.verify()["ok"] == len(IDS) and read_journal(report_path) == {}
    # resuming finishes the job
    report = apply_lifecycle(store, plan_lifecycle(store, None, days=30, mode="q8", min_psnr=0, model="taef2",
                                                   now=NOW), report_path=report_path, decoder=taef2, echo=None)
    assert report.rewritten == len(IDS) and all(store.record(i)["lossy"] for i in IDS)


def test_rewrite_refuses_values_that_differ_from_the_checked_ones(store, taef2_latents_64):
    before = store.record("img-0")
    with pytest.raises(CorruptDataError, match="checked values"):
        store.rewrite(["img-0"], taef2_latents_64[:1], precision="q8", checked_sha256=["00" * 32])
    assert store.record("img-0") == before


def test_runs_as_dask_tasks(store, taef2_latents_64, tmp_path):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        report = apply_lifecycle(store, plan(store, 0), report_path=tmp_path / "r.jsonl", client=client,
                                 batch_size=2, echo=None)
    assert report.rewritten == 6 and len(read_journal(tmp_path / "r.jsonl")) == 6
    store.refresh()
    lossy, _ = roundtrip(taef2_latents_64, "q8", dtype=np.float16)
    assert np.array_equal(bits(store.get(COLD)), bits(lossy[[IDS.index(i) for i in COLD]]))


def test_cli_dry_run_and_run(store, tmp_path):
    from click.testing import CliRunner

    from latentzarr.cli import cli

    now = datetime.now(UTC)  # the CLI's clock is the real one: ids never read were ingested just now
    log = tmp_path / "access.csv"
    log.write_text("id,last_access\n" + "".join(f"{i},{(now - timedelta(days=40)).isoformat()}\n" for i in IDS[:4])
                   + "".join(f"{i},{(now - timedelta(days=1)).isoformat()}\n" for i in IDS[4:6]))
    runner = CliRunner()
    args = ["lifecycle", store.url, "--days", "30", "--mode", "q8", "--min-psnr", "0", "--access-log", str(log)]
    dry = runner.invoke(cli, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    dry_json = json.loads(dry.output.splitlines()[-1])  # a dry run says "would", and writes nothing
    assert dry_json["would_rewrite"] == 4 and dry_json["bytes_would_save"] > 0 and "rewritten" not in dry_json
    assert all(not LatentStore.open(store.url).record(i)["lossy"] for i in IDS)
    real = runner.invoke(cli, [*args, "--report", str(tmp_path / "r.jsonl")])
    assert real.exit_code == 0, real.output
    out = json.loads(real.output.splitlines()[-1])
    assert out["rewritten"] == 4 and out["bytes_saved"] > 0
    assert [LatentStore.open(store.url).record(i)["lossy"] for i in IDS] == [True] * 4 + [False] * 4
    missing = runner.invoke(cli, args)
    assert missing.exit_code != 0 and "--report" in missing.output


def test_cli_wstep_measures_sensitivities_only_for_candidates_and_once_per_model(store, tmp_path, monkeypatch):
    """wstep needs the decoder's channel sensitivities: not measured when nothing is a candidate; measured
    once per model setup (kept in $LATENTZARR_CACHE_DIR), with progress; a synthetic trace is accepted."""
    from click.testing import CliRunner

    import latentzarr.precision.sensitivity as sens
    from latentzarr.cli import cli

    monkeypatch.setenv("LATENTZARR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(sens, "_MEMO", {})
    calls = []
    real = sens.channel_sensitivity
    monkeypatch.setattr(sens, "channel_sensitivity", lambda *a, **k: calls.append(1) or real(*a, **k))
    runner = CliRunner()
    args = ["lifecycle", store.url, "--mode", "wstep:0.08", "--min-psnr", "0", "--dry-run"]
    none = runner.invoke(cli, [*args, "--days", "36500"])
    assert none.exit_code == 0, none.output
    assert "plan: 0 candidates" in none.output and calls == []
    synth = tmp_path / "synth.parquet"
    made = runner.invoke(cli, ["trace", "synth", "--requests", "500", "--days", "2", "--out", str(synth)])
    assert made.exit_code == 0, made.output
    first = runner.invoke(cli, [*args, "--days", "0", "--trace", str(synth)])
    assert first.exit_code == 0, first.output
    assert "0 of them in the store" in first.output and "measuring the decoder's channel sensitivities" in first.output
    assert calls == [1] and len(list((tmp_path / "cache" / "sensitivity").glob("*.json"))) == 1
    monkeypatch.setattr(sens, "_MEMO", {})  # a new process: the file is read, nothing measured again
    again = runner.invoke(cli, [*args, "--days", "0"])
    assert again.exit_code == 0 and calls == [1]
    assert json.loads(again.output.splitlines()[-1])["mode"] == json.loads(first.output.splitlines()[-1])["mode"]
