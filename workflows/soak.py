"""Soak: continuous reads through a LocalCluster whose store fails at random while workers are killed.

A LocalCluster of ``--workers`` processes (one thread, one torch thread, ``--cache-kib`` of cache each) serves a
latent store through :class:`~latentzarr.store.faults.FaultInjector` (``--error-rate`` of store operations raise a
transient error, ``--timeout-rate`` hang ``--timeout-s`` and time out). ``--concurrency`` readers issue
:meth:`LatentClient.read <latentzarr.cluster.LatentClient.read>` of random ids for ``--minutes``; every
``--kill-every`` seconds one worker process is killed with SIGKILL (its nanny starts a new one). A read that raises
a *retryable* error (``exc.retryable``: ``StoreUnavailableError``, ``ReadFailedError``) is retried up to
``--retries`` times, as a client following the contract would. Each request ends as:

- ``ok``: the picture's pixels equal the reference decode (the stored latent decoded in this process with one
  torch thread, batch 1: the workers' setup);
- ``retryable``: every attempt raised a retryable error (a clear failure, not a lost read);
- ``LOST``: wrong pixels, no answer within ``--request-timeout`` s, or any other exception.

At the end the store is verified (:meth:`LatentStore.verify`: every latent's SHA-256 against the index). The bar:
zero LOST and a bit-exact store. Without a STORE, one of ``--build-images`` real photo crops is built first.

    LATENTZARR_MODELS=/work/shared/models python workflows/soak.py --minutes 10 --kill-every 120 \\
        --error-rate 0.05 --workers 3 --json soak.json
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import io
import json
import os
import platform
import signal
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np


def reference_digests(store_url: str, ids: list[str]) -> dict[str, str]:
    """SHA-256 of each id's decoded pixels, decoded here one at a time with one torch thread (the workers' setup)."""
    import torch

    from latentzarr.models import load_model
    from latentzarr.store import LatentStore

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        store = LatentStore.open(store_url)
        models: dict[str, Any] = {}
        out = {}
        for image_id in ids:
            name = store.record(image_id)["model"]
            model = models.setdefault(name, load_model(name, device="cpu"))
            out[image_id] = hashlib.sha256(model.decode(store.get([image_id]), batch_size=1)[0].tobytes()).hexdigest()
        return out
    finally:
        torch.set_num_threads(threads)


def pixel_digest(png: bytes) -> str:
    from PIL import Image

    return hashlib.sha256(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).tobytes()).hexdigest()


class Killer(threading.Thread):
    """Kill one worker process (SIGKILL) every ``every`` seconds, round-robin over worker names."""

    def __init__(self, client: Any, every: float, stop: threading.Event) -> None:
        super().__init__(daemon=True, name="soak-killer")
        self.client, self.every, self.stop = client, every, stop
        self.kills: list[dict[str, Any]] = []
        self.t0 = time.monotonic()

    def run(self) -> None:
        n = 0
        while not self.stop.wait(self.every):
            workers = self.client.scheduler_info(n_workers=-1)["workers"]
            if not workers:
                continue
            by_name = sorted((str(w.get("name")), addr) for addr, w in workers.items())
            name, addr = by_name[n % len(by_name)]
            n += 1
            try:
                pid = self.client.run(os.getpid, workers=[addr])[addr]
                os.kill(pid, signal.SIGKILL)
                self.kills.append({"t_s": round(time.monotonic() - self.t0, 1), "worker": name, "pid": pid})
            except Exception as exc:  # the worker was restarting: try the next one next time
                self.kills.append({"t_s": round(time.monotonic() - self.t0, 1), "worker": name,
                                   "failed": f"{type(exc).__name__}: {exc}"})


def _fault_counts(dask_worker: Any) -> dict[str, int]:
    plugin = dask_worker.plugins.get("latentzarr")
    return dict(plugin.faults.counts) if plugin is not None and plugin.faults is not None else {}


def one_request(lc: Any, image_id: str, expected: str, retries: int) -> dict[str, Any]:
    """Read ``image_id`` (retrying retryable errors); return its outcome, attempts and errors seen."""
    errors = []
    for attempt in range(retries + 1):
        try:
            png = lc.read(image_id, "png")
        except Exception as exc:
            errors.append(type(exc).__name__)
            if not getattr(exc, "retryable", False):
                return {"outcome": "LOST", "why": f"unexpected {type(exc).__name__}: {exc}", "errors": errors}
            if attempt < retries:
                time.sleep(0.1 * 2**attempt)
            continue
        if pixel_digest(png) != expected:
            return {"outcome": "LOST", "why": "wrong pixels", "errors": errors}
        return {"outcome": "ok", "errors": errors}
    return {"outcome": "retryable", "why": errors[-1], "errors": errors}


def soak(store_url: str, *, minutes: float, kill_every: float, error_rate: float, timeout_rate: float,
         timeout_s: float, workers: int, concurrency: int, cache_bytes: int, retries: int, request_timeout: float,
         seed: int) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from latentzarr.cluster import start_cluster
    from latentzarr.store import LatentStore
    from latentzarr.store.faults import FaultInjector

    ids = LatentStore.open(store_url).ids()
    before = LatentStore.open(store_url).verify()
    reference = reference_digests(store_url, ids)
    faults = FaultInjector(error_rate=error_rate, timeout_rate=timeout_rate, timeout_s=timeout_s, seed=seed)
    lc = start_cluster(store_url, n_workers=workers, threads_per_worker=1, cache_bytes=cache_bytes,
                       torch_threads=1, max_batch=1, faults=faults)
    rng = np.random.default_rng(seed)
    counts: Counter[str] = Counter()
    attempt_errors: Counter[str] = Counter()
    lost: list[dict[str, Any]] = []
    stop = threading.Event()
    killer = Killer(lc.client, kill_every, stop)
    duration = minutes * 60
    pool = cf.ThreadPoolExecutor(concurrency * 2, thread_name_prefix="soak-reader")
    pending: dict[cf.Future, tuple[str, float]] = {}
    t0 = time.monotonic()
    try:
        killer.start()
        with tqdm(total=round(duration), unit="s", desc="soak") as bar:
            while True:
                now = time.monotonic()
                while now - t0 < duration and len(pending) < concurrency:
                    image_id = ids[int(rng.integers(len(ids)))]
                    pending[pool.submit(one_request, lc, image_id, reference[image_id], retries)] = (image_id, now)
                if not pending:
                    break
                done, _ = cf.wait(pending, timeout=1.0, return_when=cf.FIRST_COMPLETED)
                now = time.monotonic()
                for fut in list(pending):
                    image_id, started = pending[fut]
                    if fut in done:
                        result = fut.result()
                    elif now - started > request_timeout:  # a hang: count it, stop waiting for it
                        result = {"outcome": "LOST", "why": f"no answer in {request_timeout:g} s", "errors": []}
                    else:
                        continue
                    del pending[fut]
                    counts[result["outcome"]] += 1
                    counts["retried"] += bool(result["errors"]) and result["outcome"] == "ok"
                    attempt_errors.update(result["errors"])
                    if result["outcome"] == "LOST":
                        lost.append({"id": image_id, "why": result["why"]})
                if now - t0 >= duration:
                    stop.set()  # no kills while the last reads drain
                if min(round(now - t0), bar.total) > bar.n:
                    bar.set_postfix(ok=counts["ok"], retryable=counts["retryable"], lost=counts["LOST"],
                                    kills=len(killer.kills), refresh=False)
                    bar.update(min(round(now - t0), bar.total) - bar.n)
        elapsed = time.monotonic() - t0
        stop.set()
        stats = lc.stats()["total"]
        injected: Counter[str] = Counter()
        for per_worker in lc.client.run(_fault_counts).values():
            injected.update(per_worker)
    finally:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        lc.close()
    after = LatentStore.open(store_url).verify()
    requests = counts["ok"] + counts["retryable"] + counts["LOST"]
    return {
        "machine": f"{platform.node()} ({os.cpu_count()} CPUs, {platform.processor() or platform.machine()})",
        "store": store_url, "ids": len(ids), "minutes": minutes, "elapsed_s": round(elapsed, 1),
        "workers": workers, "concurrency": concurrency, "cache_bytes": cache_bytes, "kill_every_s": kill_every,
        "error_rate": error_rate, "timeout_rate": timeout_rate, "retries": retries,
        "requests": requests, "ok": counts["ok"], "ok_after_retry": counts["retried"],
        "retryable_failures": counts["retryable"], "lost": counts["LOST"], "lost_samples": lost[:20],
        "requests_per_s": round(requests / elapsed, 2) if elapsed else None,
        "attempt_errors": dict(attempt_errors), "kills": killer.kills,
        "store_fetches": stats.get("store_fetches"), "decodes": stats.get("decodes"),
        "faults_seen": dict(injected),
        "verify_before": before, "verify_after": after,
        "bit_exact": after["ok"] == after["checked"] == len(ids) and not after["mismatched"]
        and not after["unreadable"],
        "bar_met": counts["LOST"] == 0 and after["ok"] == len(ids) and not after["mismatched"]
        and not after["unreadable"],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store", nargs="?", default=None, help="latentzarr store (default: build one)")
    parser.add_argument("--minutes", type=float, default=10.0, help="duration of the read load (10 min)")
    parser.add_argument("--kill-every", type=float, default=120.0, help="seconds between worker kills (120)")
    parser.add_argument("--error-rate", type=float, default=0.05, help="store operations that fail (0.05)")
    parser.add_argument("--timeout-rate", type=float, default=0.0, help="store operations that time out (0)")
    parser.add_argument("--timeout-s", type=float, default=1.0, help="hang before an injected timeout (1 s)")
    parser.add_argument("--workers", type=int, default=3, help="worker processes (3)")
    parser.add_argument("--concurrency", type=int, default=4, help="reads in flight (4)")
    parser.add_argument("--cache-kib", type=int, default=64, help="cache per worker (64 KiB)")
    parser.add_argument("--retries", type=int, default=3, help="retries of a retryable error per request (3)")
    parser.add_argument("--request-timeout", type=float, default=60.0, help="a request longer than this is LOST (60 s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the ids read and the injected faults (0)")
    parser.add_argument("--build-size", type=int, default=64, help="picture side of a built store (64 px)")
    parser.add_argument("--build-images", type=int, default=128, help="ids in a built store (128)")
    parser.add_argument("--workdir", default=None, help="folder for a built store (default: a temporary one)")
    parser.add_argument("--json", dest="json_path", default=None, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="latentzarr-soak-") as tmp:
        store = args.store
        if store is None:
            from latentzarr.bench import build_sample_store

            store = build_sample_store(Path(args.workdir or tmp) / f"soak-{args.build_size}.zarr",
                                       n_images=args.build_images, size=args.build_size, seed=args.seed)
        doc = soak(store, minutes=args.minutes, kill_every=args.kill_every, error_rate=args.error_rate,
                   timeout_rate=args.timeout_rate, timeout_s=args.timeout_s, workers=args.workers,
                   concurrency=args.concurrency, cache_bytes=args.cache_kib * 2**10, retries=args.retries,
                   request_timeout=args.request_timeout, seed=args.seed)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(doc, indent=1, default=str) + "\n")
    print("| requests | ok | ok after retry | retryable failures | LOST | req/s | kills | store verify |")
    print("|---|---|---|---|---|---|---|---|")
    after = doc["verify_after"]
    print(f"| {doc['requests']} | {doc['ok']} | {doc['ok_after_retry']} | {doc['retryable_failures']} | "
          f"{doc['lost']} | {doc['requests_per_s']} | {sum('pid' in k for k in doc['kills'])} | "
          f"{after['ok']}/{after['checked']} bit-exact |")
    print(f"errors seen by request attempts: {doc['attempt_errors'] or 'none'}")
    print(f"store operations / injected faults: {doc['faults_seen']}; store fetches {doc['store_fetches']}, "
          f"decodes {doc['decodes']} (counters of the worker processes alive at the end)")
    for sample in doc["lost_samples"]:
        print(f"LOST {sample['id']}: {sample['why']}")
    print("BAR MET" if doc["bar_met"] else "BAR NOT MET")
    return doc


if __name__ == "__main__":
    main()
