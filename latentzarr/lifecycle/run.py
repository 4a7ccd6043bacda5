"""Apply a lifecycle plan: check each candidate's PSNR at the lossy mode, rewrite the passing ones atomically.

Per batch of ids (one Dask task each when a client is given, else in this process):

1. read the lossless latents; encode them in the mode and decode back (exactly what the store would keep);
2. decode both to pixels with the model and measure the PSNR (scikit-image, data range 255) per id;
3. ids at or above ``min_psnr`` are re-stored through :meth:`LatentStore.rewrite`: new rows are appended, read
   back and compared with the checked values, then ONE move commit re-points them. An id below the threshold is
   never written; a crash before the commit leaves every id on its old row (see the store's write protocol).

The report is a JSON-lines journal, one line per id as its batch finishes (``status``: ``rewritten``,
``kept`` (failed the check), ``skipped`` (already lossy, rewritten by someone else meanwhile, or gone)), then a
``summary`` line per run. A re-run with the same report skips the ids it rewrote or kept, so an interrupted run
resumes; skipped ids are looked at again (cheaply). An id that a vacuum's compaction moved since the plan (same
values, new row) is checked and rewritten where it is now. A dry run writes nothing (no store write, no journal) and
returns what it would save.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from latentzarr.lifecycle.policy import Candidate, Plan
from latentzarr.precision.modes import PrecisionMode
from latentzarr.precision.storage import decode_latents, encode_latents

if TYPE_CHECKING:
    from latentzarr.store import LatentStore

__all__ = ["LifecycleReport", "apply_lifecycle", "check_batch", "read_journal"]



_DECODERS: dict[str, Any] = {}
_DECODERS_LOCK = threading.Lock()


@dataclass
class LifecycleReport:
    """Totals of one :func:`apply_lifecycle` run (sizes in bytes, PSNR in dB).

    ``bytes_now`` / ``bytes_after`` cover the ids that passed the check (rewritten, or would be in a dry run):
    their lossless chunks vs their chunks in the mode. The old chunks stay in their shards until
    :meth:`LatentStore.vacuum` (``latentzarr vacuum``) reclaims them, so the store's own ``stored_bytes`` only drops
    then.
    """

    mode: str
    dry_run: bool
    checked: int = 0
    rewritten: int = 0
    kept: int = 0
    skipped: int = 0
    resumed: int = 0
    """Ids the journal already held (not checked again)."""
    bytes_now: int = 0
    bytes_after: int = 0
    psnr_min: float | None = None
    psnr_mean: float | None = None
    kept_ids: list[str] = field(default_factory=list)

    @property
    def bytes_saved(self) -> int:
        """``bytes_now - bytes_after``."""
        return self.bytes_now - self.bytes_after

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``kept_ids`` cut to 100). A dry run names what it did not do as such:
        ``would_rewrite`` and ``bytes_would_save`` instead of ``rewritten`` and ``bytes_saved``."""
        out = {k: v for k, v in self.__dict__.items() if k != "kept_ids"}
        out["bytes_saved"] = self.bytes_saved
        if self.dry_run:
            out = {{"rewritten": "would_rewrite", "bytes_saved": "bytes_would_save"}.get(k, k): v
                   for k, v in out.items()}
        out["kept_ids"] = self.kept_ids[:100]
        return out


def _decoder(model: str) -> Any:
    """The model's decoder, loaded once per process (on CPU)."""
    with _DECODERS_LOCK:
        if model not in _DECODERS:
            from latentzarr.models import load_model

            _DECODERS[model] = load_model(model, device="cpu")
        return _DECODERS[model]


def _psnr(reference: np.ndarray, test: np.ndarray) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    if np.array_equal(reference, test):
        return float("inf")
    return float(peak_signal_noise_ratio(reference, test, data_range=255))


def check_batch(store: LatentStore, candidates: Sequence[Candidate], mode: PrecisionMode, min_psnr: float,
                model: str, *, dry_run: bool = False, decoder: Any = None) -> list[dict[str, Any]]:
    """Check (and unless ``dry_run`` rewrite) candidates of ONE array; return one journal entry per id.

    Entries: ``id``, ``status``, ``psnr`` (dB; None when not checked), ``bytes_now``, ``bytes_after``, ``reason``.
    """
    decoder = decoder if decoder is not None else _decoder(model)
    store.refresh()
    entries: list[dict[str, Any]] = []
    live: list[Candidate] = []
    where: dict[str, tuple[str, int]] = {}  # where each id is now (a vacuum may have moved it since the plan)
    for c in candidates:  # only ids still lossless
        rec = store.record(c.id) if c.id in store else None
        if rec is None:
            entries.append(_entry(c, "skipped", reason="gone"))
        elif rec["lossy"]:
            entries.append(_entry(c, "skipped", reason=f"already {rec['precision']}"))
        else:
            live.append(c)
            where[c.id] = (rec["array"], rec["row"])
    if not live:
        return entries
    ids = [c.id for c in live]
    lossless = np.stack(store.get_many(ids))
    encoded = encode_latents(lossless, mode)
    lossy = decode_latents(encoded, dtype=lossless.dtype)  # bit-exactly what the store will hold
    reference, test = decoder.decode(lossless), decoder.decode(lossy)
    psnrs = [_psnr(reference[i], test[i]) for i in range(len(ids))]
    nbytes = encoded.nbytes
    smaller = [int(nbytes[i]) < c.bytes_now for i, c in enumerate(live)]  # a lossy chunk that is bigger: keep
    passing = [i for i, p in enumerate(psnrs) if p >= min_psnr and smaller[i]]
    moved: set[str] = set()
    if passing and not dry_run:
        from latentzarr.store.layout import latent_digest, to_storage

        logical = lossless.dtype.name
        moved = set(store.rewrite(
            [ids[i] for i in passing], lossy[passing], precision=mode,
            expect={ids[i]: where[ids[i]] for i in passing},
            pixel_digests=[hashlib.sha256(np.ascontiguousarray(test[i]).tobytes()).hexdigest() for i in passing],
            decoder_setup={"lifecycle": mode.name, "model": model, "device": "cpu"},
            checked_sha256=[latent_digest(to_storage(lossy[i], logical)).hex() for i in passing],
        ))
    for i, c in enumerate(live):
        after = int(nbytes[i])
        if psnrs[i] < min_psnr:
            entries.append(_entry(c, "kept", psnrs[i], after, reason=f"PSNR {psnrs[i]:.2f} dB < {min_psnr} dB"))
        elif not smaller[i]:
            entries.append(_entry(c, "kept", psnrs[i], after, reason=f"{after} B in {mode.name} is not smaller "
                                                                     f"than {c.bytes_now} B lossless"))
        elif dry_run:
            entries.append(_entry(c, "would_rewrite", psnrs[i], after))
        elif c.id in moved:
            entries.append(_entry(c, "rewritten", psnrs[i], after))
        else:
            entries.append(_entry(c, "skipped", psnrs[i], after, reason="moved meanwhile"))
    return entries


def _entry(c: Candidate, status: str, psnr: float | None = None, after: int | None = None,
           reason: str | None = None) -> dict[str, Any]:
    return {"id": c.id, "status": status, "psnr": None if psnr is None or not np.isfinite(psnr) else round(psnr, 4),
            "exact": psnr is not None and not np.isfinite(psnr), "bytes_now": c.bytes_now, "bytes_after": after,
            "reason": reason}


def read_journal(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The per-id entries of a lifecycle report (last entry per id wins); a torn last line is ignored."""
    out: dict[str, dict[str, Any]] = {}
    p = Path(path)
    if not p.exists():
        return out
    for line in p.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a crash
            continue
        if isinstance(entry, dict) and "id" in entry:
            out[entry["id"]] = entry
    return out


def _batches(candidates: Sequence[Candidate], size: int) -> Iterator[list[Candidate]]:
    by_array: dict[str, list[Candidate]] = {}
    for c in candidates:
        by_array.setdefault(c.array, []).append(c)
    for group in by_array.values():
        for lo in range(0, len(group), size):
            yield group[lo:lo + size]


def apply_lifecycle(store: LatentStore, plan: Plan, *, report_path: str | os.PathLike[str] | None,
                    client: Any = None, dry_run: bool = False, batch_size: int | None = None,
                    decoder: Any = None, echo: Callable[[str], None] | None = print) -> LifecycleReport:
    """Run ``plan``: check every candidate and rewrite those whose PSNR >= ``plan.min_psnr``.

    Parameters
    ----------
    store
        The store, opened with ``mode="a"`` (a dry run only reads).
    plan
        From :func:`~latentzarr.lifecycle.plan_lifecycle`.
    report_path
        The JSON-lines journal (appended to; ids it holds are skipped, so a re-run resumes). Required unless
        ``dry_run``; a dry run never writes it.
    client
        A ``distributed.Client``: each batch runs as one task (workers load the decoder once). None: here.
    dry_run
        Check but write nothing; the report says what would be saved (and ``echo`` prints it).
    batch_size
        Ids per batch (>= 1): one task, one store read, two decodes (in the model's own batches) and at most one
        rewrite, i.e. one move commit into fresh shards. Default: the store's shard size, so that rewrites fill
        whole shards as far as their ids pass the check.
    decoder
        The loaded model for local runs (default: ``load_model(plan.model, device="cpu")``).
    echo
        Where progress lines go (None: silent).
    """
    batch_size = store.shard_images if batch_size is None else batch_size
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"Expected batch_size >= 1. Got {batch_size!r} instead.")
    if report_path is None and not dry_run:
        raise ValueError("Expected a report_path (the resumable journal). Got None instead; pass one, or dry_run.")
    done = {} if report_path is None else read_journal(report_path)
    resumed = {k for k, v in done.items() if v.get("status") in ("rewritten", "kept")}  # skipped: looked at again
    todo = [c for c in plan.candidates if c.id not in resumed]
    report = LifecycleReport(plan.mode.name, dry_run, resumed=len(plan.candidates) - len(todo))
    psnrs: list[float] = []
    with contextlib.ExitStack() as stack:
        journal = None if dry_run or report_path is None else stack.enter_context(Path(report_path).open("a"))
        for entries in _run(store, todo, plan, dry_run, batch_size, client, decoder):
            for e in entries:
                _tally(report, e, psnrs)
                if journal is not None:
                    journal.write(json.dumps(e) + "\n")
            if journal is not None:  # durable before the next batch: a crash loses at most the running batches
                journal.flush()
                os.fsync(journal.fileno())
            if echo is not None:
                echo(f"lifecycle: {report.checked} checked, {report.rewritten} rewritten, {report.kept} kept")
        report.psnr_min = min(psnrs) if psnrs else None
        report.psnr_mean = float(np.mean(psnrs)) if psnrs else None
        if journal is not None:
            summary = {"summary": report.to_dict(), "plan": plan.describe(), "finished": datetime.now(UTC).isoformat()}
            journal.write(json.dumps(summary) + "\n")
    if echo is not None and dry_run:
        echo(f"dry run, mode {plan.mode.name}: {report.checked} checked, {report.kept} would stay lossless; "
             f"{report.bytes_now} bytes now -> {report.bytes_after} after ({report.bytes_saved} saved)")
    return report


def _tally(report: LifecycleReport, e: dict[str, Any], psnrs: list[float]) -> None:
    if e["psnr"] is not None or e["exact"]:
        report.checked += 1
        if e["psnr"] is not None:
            psnrs.append(e["psnr"])
    if e["status"] in ("rewritten", "would_rewrite"):
        report.rewritten += 1
        report.bytes_now += e["bytes_now"]
        report.bytes_after += e["bytes_after"]
    elif e["status"] == "kept":
        report.kept += 1
        report.kept_ids.append(e["id"])
    else:
        report.skipped += 1


def _run(store: LatentStore, todo: list[Candidate], plan: Plan, dry_run: bool, batch_size: int, client: Any,
         decoder: Any) -> Iterator[list[dict[str, Any]]]:
    batches = list(_batches(todo, batch_size))
    if client is None:
        for batch in batches:
            yield check_batch(store, batch, plan.mode, plan.min_psnr, plan.model, dry_run=dry_run, decoder=decoder)
        return
    from distributed import as_completed

    futures = [client.submit(check_batch, store, batch, plan.mode, plan.min_psnr, plan.model, dry_run=dry_run,
                             pure=False) for batch in batches]
    for future in as_completed(futures):
        yield future.result()
