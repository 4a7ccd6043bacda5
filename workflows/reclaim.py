"""Reclaimed bytes on disk: a real store's files before and after the precision-tier lifecycle and a vacuum.

A store is built on disk (a temporary folder, or ``--store``) with the objects of a synthetic trace with the
published ageing (:func:`latentzarr.traces.synth_trace`, seeded, sized to ``--objects`` objects): each object is
one of the 8 sample photos (drawn with the seed), encoded with the trained taef2 encoder at ``--px`` pixels and
stored float16 lossless, in puts of ``--put-batch`` ids in birth order, as an ingest would. The trace's last
access per object (:func:`~latentzarr.lifecycle.last_access_from_trace`, shifted so that the trace ends at the
run's clock, the policy's "now") drives the lifecycle policy "objects not read for ``--days`` days are rewritten at
``--mode`` if their PSNR is at least ``--threshold`` dB" (:func:`latentzarr.lifecycle.plan_lifecycle` and
:func:`~latentzarr.lifecycle.apply_lifecycle`, in this process), then ``LatentStore.vacuum(grace=0)`` reclaims the
rows no id points to any more: it deletes shards without live rows and compacts those at least ``--compact-at``
garbage; the garbage of the other shards stays (shown as "left after vacuum").

The bytes of every file under the store's folder (and the arrays' stored bytes, ``info()["stored_bytes"]``) are
measured at three points: lossless only (the baseline), after the lifecycle (the old lossless rows are still on
disk: more than the baseline), and after the vacuum. Then the checks: ``verify()`` finds every id intact, every id
the lifecycle did not rewrite reads back bit-exactly its ingested latent, every rewritten id bit-exactly the lossy
values the lifecycle checked (recomputed here from the ingested latent), and the vacuum changed no id's digest.

Bar: the policy cuts persistent bytes by at least 30% more than lossless alone, on disk: bytes after the vacuum
at most 0.70x the lossless-only baseline.

    LATENTZARR_MODELS=/work/shared/models python workflows/reclaim.py --json reclaim.json
    python workflows/reclaim.py --objects 64 --px 512 --store /tmp/reclaim.zarr
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from latentzarr.sim.tiers import DAY_S
from latentzarr.traces import Trace, synth_trace

if TYPE_CHECKING:
    from latentzarr.precision import PrecisionMode
    from latentzarr.store import LatentStore

MAX_RATIO = 0.70  # bar: bytes on disk after lifecycle + vacuum <= 70% of the lossless-only baseline
MODEL = "taef2"
POINTS = ("lossless", "lifecycle", "vacuum")
LABELS = {"lossless": "lossless only (baseline)", "lifecycle": "after lifecycle", "vacuum": "after vacuum"}


def parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objects", type=int, default=256, help="objects of the trace and of the store [256]")
    p.add_argument("--px", type=int, default=256, help="picture size in pixels (a multiple of 8) [256]")
    p.add_argument("--seed", type=int, default=0, help="seed of the trace and of the photo drawn per object [0]")
    p.add_argument("--days", type=float, default=30.0, help="idle days before demotion [30]")
    p.add_argument("--mode", default="wstep:0.08", help="precision mode of the demoted tier [wstep:0.08]")
    p.add_argument("--threshold", type=float, default=50.0, help="minimum PSNR (dB) to demote [50]")
    p.add_argument("--put-batch", type=int, default=64, help="ids per put at ingest [64]")
    p.add_argument("--shard-images", type=int, default=None, help="images per shard of the new store [store default]")
    p.add_argument("--batch-size", type=int, default=None, help="ids per lifecycle batch [lifecycle default]")
    p.add_argument("--compact-at", type=float, default=None,
                   help="vacuum: compact shards at least this share garbage [vacuum default]")
    p.add_argument("--reference-requests", type=int, default=2_000_000,
                   help="requests of the reference trace whose idle share is shown next to this one's "
                        "(workflows/precision_tiers.py's default); 0 skips it [2,000,000]")
    p.add_argument("--store", default=None,
                   help="build the store at this new path and keep it (journal beside it as PATH.lifecycle.jsonl) "
                        "[a temporary folder, removed]")
    p.add_argument("--json", dest="json_out", default=None, help="write the JSON document here")
    return p


def trace_with_objects(objects: int, seed: int) -> Trace:
    """A synthetic trace (published ageing, ``seed``) with ``objects`` objects, or as close as its sizing allows.

    The number of objects follows from the number of requests (about 20 per object); a few rounds of rescaling
    the requests find the count that gives ``objects``.
    """
    requests = 20 * objects
    trace = synth_trace(requests, seed=seed)
    for _ in range(6):
        if trace.n_objects == objects:
            break
        requests = max(1, round(requests * objects / max(1, trace.n_objects)))
        trace = synth_trace(requests, seed=seed)
    return trace


def idle_share(trace: Trace, days: float) -> float:
    """Share of the trace's objects whose last request is more than ``days`` days before the trace end."""
    end_s = float(trace.meta["params"]["days"]) * DAY_S
    last = np.full(trace.n_objects, -np.inf)
    np.maximum.at(last, trace.object_ids, trace.timestamps)
    return float(np.mean(last < end_s - days * DAY_S))


def disk_usage(store: LatentStore, root: Path) -> dict[str, int]:
    """Bytes on disk: every file under ``root`` (apparent sizes and allocated blocks) and the arrays' stored
    bytes (``info()["stored_bytes"]``); images and lossy images committed."""
    files = n = allocated = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            st = os.stat(os.path.join(dirpath, name))
            files += st.st_size
            allocated += st.st_blocks * 512
            n += 1
    info = store.info()
    return {"files": n, "file_bytes": files, "allocated_bytes": allocated, "stored_bytes": int(info["stored_bytes"]),
            "images": int(info["images"]), "lossy_images": int(info["lossy_images"])}


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a.view(np.uint16), b.view(np.uint16)))


def check_store(store: LatentStore, ids: list[str], latents: np.ndarray, rewritten: set[str], mode: PrecisionMode,
                digests_lifecycle: dict[str, str], digests_lossless: dict[str, str]) -> dict[str, Any]:
    """After the vacuum: verify(), bit-exact reads of untouched and rewritten ids, digests unchanged by the vacuum.

    ``latents`` (N, C, h, w) float16 are the ingested latents of ``ids`` (same order).
    """
    from latentzarr.precision import decode_latents, encode_latents

    verify = store.verify()
    verify_ok = (verify["checked"] == len(ids) == verify["ok"] and not verify["mismatched"]
                 and not verify["unreadable"])
    records = {i: store.record(i) for i in ids}
    untouched = [k for k, i in enumerate(ids) if i not in rewritten]
    moved = [k for k, i in enumerate(ids) if i in rewritten]
    out: dict[str, Any] = {"verify": {**verify, "unreadable": dict(list(verify["unreadable"].items())[:10]),
                                      "mismatched": verify["mismatched"][:10]},
                           "verify_ok": verify_ok, "untouched": len(untouched), "rewritten": len(moved)}
    # untouched: the ingested bits, the ingested digest, still lossless
    bad_untouched = []
    if untouched:
        got = store.get([ids[k] for k in untouched])
        for j, k in enumerate(untouched):
            rec = records[ids[k]]
            if (not _same_bits(got[j], latents[k]) or rec["latent_sha256"] != digests_lossless[ids[k]]
                    or rec["lossy"]):
                bad_untouched.append(ids[k])
    # rewritten: exactly the lossy values the lifecycle checked (recomputed from the ingested latent), in the mode
    bad_rewritten = []
    if moved:
        expected = decode_latents(encode_latents(latents[moved], mode), dtype=latents.dtype)
        got = store.get([ids[k] for k in moved])
        for j, k in enumerate(moved):
            rec = records[ids[k]]
            if not _same_bits(got[j], expected[j]) or not rec["lossy"] or rec["precision"] != mode.name:
                bad_rewritten.append(ids[k])
    changed = [i for i in ids if records[i]["latent_sha256"] != digests_lifecycle[i]]
    out.update(untouched_bit_exact=not bad_untouched, bad_untouched=bad_untouched[:10],
               rewritten_exact=not bad_rewritten, bad_rewritten=bad_rewritten[:10],
               vacuum_kept_digests=not changed, digest_changed_by_vacuum=changed[:10])
    out["all_ok"] = bool(verify_ok and not bad_untouched and not bad_rewritten and not changed)
    return out


def say(msg: str) -> None:
    """A progress line, to stderr."""
    print(msg, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the workflow; print as it goes; return the JSON document."""
    from latentzarr.lifecycle import apply_lifecycle, last_access_from_trace, plan_lifecycle, read_journal
    from latentzarr.models import load_model
    from latentzarr.precision import resolve_mode
    from latentzarr.samples import sample_images
    from latentzarr.store import LatentStore
    from latentzarr.store.vacuum import scan_shards

    if args.objects < 1:
        raise ValueError(f"Expected --objects >= 1. Got {args.objects} instead.")
    if args.put_batch < 1:
        raise ValueError(f"Expected --put-batch >= 1. Got {args.put_batch} instead.")
    t0 = time.perf_counter()

    # 1. real taef2 latents of the sample photos; the mode resolved with the model (wstep needs its decoder)
    model = load_model(MODEL, device="cpu")
    pictures = sample_images(args.px)
    names = list(pictures)
    photo_latents = model.encode(np.stack([pictures[n] for n in names]), dtype=np.float16)
    mode = resolve_mode(args.mode, model)
    print(f"latents: {MODEL} float16 {list(photo_latents.shape[1:])} of the {len(names)} sample photos at "
          f"{args.px} px; mode {args.mode} -> {mode.name}")

    # 2. the trace: one store id per trace object, in birth order; a photo per object
    trace = trace_with_objects(args.objects, args.seed)
    n = trace.n_objects
    ids = [f"obj-{code:06d}" for code in range(n)]
    trace = dataclasses.replace(trace, id_labels=np.asarray(ids, dtype=object))
    end_s = float(trace.meta["params"]["days"]) * DAY_S
    now = datetime.now(UTC).replace(microsecond=0)  # the policy's clock: the trace ends now
    shift = now - datetime.fromtimestamp(end_s, UTC)
    last_access = {i: when + shift for i, when in last_access_from_trace(trace).items()}
    draw = np.random.default_rng(args.seed).integers(0, len(names), size=n)
    latents = photo_latents[draw]
    idle = idle_share(trace, args.days)
    print(f"trace: {trace!r} (synthetic, published ageing, seed {args.seed}); {idle:.1%} of its objects idle "
          f"> {args.days:g} days at its end")
    ref_idle = None
    if args.reference_requests > 0:
        ref = synth_trace(args.reference_requests, seed=args.seed)
        ref_idle = idle_share(ref, args.days)
        print(f"reference: {ref!r}: {ref_idle:.1%} idle > {args.days:g} days at its end")
        del ref

    with store_place(args.store) as (root, journal):
        kw = {} if args.shard_images is None else {"shard_images": args.shard_images}
        store = LatentStore.create(root, **kw)
        t = time.perf_counter()
        attrs = {"scaling_factor": model.scaling_factor, "shift_factor": model.shift_factor}
        for lo in range(0, n, args.put_batch):
            store.put(ids[lo:lo + args.put_batch], latents[lo:lo + args.put_batch], model=MODEL, model_attrs=attrs)
        ingest_s = time.perf_counter() - t
        print(f"store: {root} ({n} ids in puts of {args.put_batch}, {store.shard_images} images per shard; "
              f"{ingest_s:.1f} s)")
        usage: dict[str, dict[str, int]] = {"lossless": disk_usage(store, root)}
        digests_lossless = {i: store.record(i)["latent_sha256"] for i in ids}
        chunks_before = sum(store.encoded_size(i) for i in ids)  # chunk payloads only, as the lifecycle counts them

        # 3. the lifecycle, in this process
        plan = plan_lifecycle(store, last_access, days=args.days, mode=mode, min_psnr=args.threshold, model=MODEL,
                              now=now)
        print(f"plan: {len(plan.candidates)} candidates of {n} ({len(plan.candidates) / n:.1%}), skipped "
              f"{plan.skipped}")
        t = time.perf_counter()
        bkw = {} if args.batch_size is None else {"batch_size": args.batch_size}
        life = apply_lifecycle(store, plan, report_path=journal, decoder=model, echo=say, **bkw)
        lifecycle_s = time.perf_counter() - t
        rewritten = {i for i, e in read_journal(journal).items() if e.get("status") == "rewritten"}
        usage["lifecycle"] = disk_usage(store, root)
        digests_lifecycle = {i: store.record(i)["latent_sha256"] for i in ids}
        print(f"lifecycle: {life.checked} checked, {life.rewritten} rewritten, {life.kept} kept lossless (PSNR < "
              f"{args.threshold:g} dB), {life.skipped} skipped; PSNR min "
              f"{'n/a' if life.psnr_min is None else f'{life.psnr_min:.2f} dB'} ({lifecycle_s:.1f} s)")

        # 4. the vacuum, no grace period
        t = time.perf_counter()
        vkw = {} if args.compact_at is None else {"compact_at": args.compact_at}
        vac = store.vacuum(grace=0, progress=say, **vkw)
        vacuum_s = time.perf_counter() - t
        usage["vacuum"] = disk_usage(store, root)
        shards, unreadable = scan_shards(store)
        left = {"shards": len(shards), "garbage_rows": sum(s.garbage_rows for s in shards),
                "garbage_bytes": sum(s.garbage_bytes for s in shards),
                "live_bytes": sum(s.live_bytes for s in shards), "unreadable": unreadable}
        checks = check_store(store, ids, latents, rewritten, mode, digests_lifecycle, digests_lossless)

    base = usage["lossless"]
    ratios = {p: {k: usage[p][k] / base[k] for k in ("file_bytes", "allocated_bytes", "stored_bytes")}
              for p in POINTS}
    print(f"\n{'on disk':<26} {'files':>6} {'file bytes':>13} {'x lossless':>10} {'array bytes':>13} "
          f"{'x lossless':>10} {'allocated':>13} {'x lossless':>10} {'lossy ids':>9}")
    for p in POINTS:
        u, r = usage[p], ratios[p]
        print(f"{LABELS[p]:<26} {u['files']:>6,} {u['file_bytes']:>13,} {r['file_bytes']:>10.3f} "
              f"{u['stored_bytes']:>13,} {r['stored_bytes']:>10.3f} {u['allocated_bytes']:>13,} "
              f"{r['allocated_bytes']:>10.3f} {u['lossy_images']:>9,}")
    live_ratio = life.bytes_after / life.bytes_now if life.bytes_now else None
    # the live bytes the lifecycle reports, as a share of the whole store's chunk bytes before it
    expected = (chunks_before - life.bytes_now + life.bytes_after) / chunks_before if chunks_before else None
    demoted = len(rewritten) / n
    print(f"\ndemoted: {len(rewritten)} of {n} objects ({demoted:.1%}); idle > {args.days:g} days "
          f"{len(plan.candidates) / n:.1%} (this trace {idle:.1%}"
          + (f", reference trace {ref_idle:.1%})" if ref_idle is not None else ")"))
    print(f"lifecycle report (live chunk bytes of the rewritten ids): {life.bytes_now:,} -> {life.bytes_after:,} B"
          + (f" ({live_ratio:.3f}x)" if live_ratio is not None else "")
          + (f"; of all chunk bytes: {expected:.3f}x lossless" if expected is not None else ""))
    print(f"vacuum (grace 0, compact_at {vac.compact_at:g}): {vac.shards} shards scanned, {vac.compacted_shards} "
          f"compacted ({vac.relocated_ids} ids, {vac.relocated_bytes:,} B relocated), {vac.deleted_shards} deleted "
          f"({vac.reclaimed_bytes:,} B reclaimed), {vac.waiting_shards} waiting, {len(vac.unreadable)} unreadable; "
          f"{vacuum_s:.2f} s")
    print(f"left after vacuum: {left['garbage_rows']} garbage rows ({left['garbage_bytes']:,} B) in shards under "
          f"compact_at, {left['live_bytes']:,} B live")
    v = checks["verify"]
    print(f"verify: {v['checked']} checked, {v['ok']} ok, {len(v['mismatched'])} mismatched, "
          f"{len(v['unreadable'])} unreadable; untouched ids bit-exact: {checks['untouched_bit_exact']} "
          f"({checks['untouched']}); rewritten ids = checked lossy values: {checks['rewritten_exact']} "
          f"({checks['rewritten']}); digests unchanged by the vacuum: {checks['vacuum_kept_digests']}")
    ratio = ratios["vacuum"]["file_bytes"]
    bar = ratio <= MAX_RATIO
    print(f"bar ({'met' if bar else 'NOT met'}): bytes on disk after lifecycle + vacuum {ratio:.3f}x lossless only "
          f"(<= {MAX_RATIO:.2f}x needed): {1 - ratio:.1%} more reduction than lossless alone (>= 30% needed); "
          f"before the vacuum {ratios['lifecycle']['file_bytes']:.3f}x")

    out: dict[str, Any] = {
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "params": {"objects": n, "objects_asked": args.objects, "px": args.px, "seed": args.seed, "days": args.days,
                   "mode": args.mode, "mode_resolved": mode.name, "threshold_db": args.threshold,
                   "put_batch": args.put_batch, "shard_images": store.shard_images,
                   "lifecycle_batch": bkw.get("batch_size"), "compact_at": vac.compact_at},
        "trace": {"requests": len(trace), "objects": n, "days": end_s / DAY_S, "idle_share": idle,
                  "reference_requests": args.reference_requests or None, "reference_idle_share": ref_idle},
        "bytes": usage,
        "ratios": ratios,
        "plan": plan.describe(),
        "lifecycle": {**life.to_dict(), "live_ratio": live_ratio, "expected_chunk_ratio": expected,
                      "demoted_share": demoted},
        "vacuum": vac.to_dict(),
        "left_after_vacuum": left,
        "checks": checks,
        "bar": {"max_ratio": MAX_RATIO, "ratio": ratio, "reduction": 1 - ratio, "met": bar},
        "seconds": {"ingest": ingest_s, "lifecycle": lifecycle_s, "vacuum": vacuum_s,
                    "total": time.perf_counter() - t0},
    }
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json_out}")
    return out


@contextlib.contextmanager
def store_place(path: str | None) -> Iterator[tuple[Path, Path]]:
    """(store folder, lifecycle journal): ``path`` (must not exist) and ``path.lifecycle.jsonl`` beside it, kept;
    or both in a temporary folder, removed afterwards."""
    if path is None:
        with tempfile.TemporaryDirectory(prefix="reclaim-") as tmp:
            yield Path(tmp) / "store.zarr", Path(tmp) / "lifecycle.jsonl"
        return
    root = Path(path)
    journal = root.with_name(root.name + ".lifecycle.jsonl")
    for p in (root, journal):
        if p.exists():
            raise FileExistsError(f"Expected no file or folder at {str(p)!r} (the workflow builds a new store). Got "
                                  "one instead; remove it or choose another --store.")
    yield root, journal


def main(argv: list[str] | None = None) -> int:
    """Run the workflow; 2 on bad input."""
    args = parser().parse_args(argv)
    try:
        run(args)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
