"""The lifecycle policy's plan: which stored latents are cold enough to be re-stored in a lossy precision mode.

Policy: *objects not read for D days are rewritten at mode M if their measured PSNR against the lossless decode
stays >= T dB, else kept lossless*. :func:`plan_lifecycle` picks the candidates (cold, still lossless, of the
given model); :func:`latentzarr.lifecycle.apply_lifecycle` checks and rewrites them. Lossy modes apply only
through this explicit policy (or an explicit ``precision=`` of ``LatentStore.put``), never by default.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from latentzarr.precision.modes import PrecisionMode, parse_mode

if TYPE_CHECKING:
    from latentzarr.store import LatentStore
    from latentzarr.traces import Trace

__all__ = ["Candidate", "Plan", "last_access_from_trace", "plan_lifecycle", "read_access_log"]


@dataclass(frozen=True)
class Candidate:
    """One id the policy may rewrite: where it is now, when it was last read (None: never), its stored bytes."""

    id: str
    array: str
    row: int
    last_access: datetime
    """Last read, or the ingest time when the id was never read (UTC)."""
    bytes_now: int
    """Bytes of its stored (lossless) chunk."""


@dataclass(frozen=True)
class Plan:
    """What :func:`apply_lifecycle` will check: the candidates and the policy's parameters.

    ``skipped`` counts the ids left out and why (``recent``, ``lossy`` (already), ``other_model``).
    """

    mode: PrecisionMode
    days: float
    min_psnr: float
    model: str
    now: datetime
    candidates: list[Candidate]
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def bytes_now(self) -> int:
        """Stored bytes of all candidates."""
        return sum(c.bytes_now for c in self.candidates)

    def describe(self) -> dict[str, Any]:
        """JSON-able summary (no per-id lines)."""
        return {"mode": self.mode.name, "days": self.days, "min_psnr": self.min_psnr, "model": self.model,
                "now": self.now.isoformat(), "candidates": len(self.candidates), "bytes_now": self.bytes_now,
                "skipped": dict(self.skipped)}


def _utc(value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"Expected a datetime of last access. Got {value!r} instead.")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def last_access_from_trace(trace: Trace) -> dict[str, datetime]:
    """Last request time per id of a trace whose ids are store ids and timestamps are Unix seconds.

    The ids are the trace's ``id_labels``; a trace stored with dense integer ids and no labels (as
    ``latentzarr trace synth`` writes them) uses those integers as text (``"17"``).
    """
    codes = np.asarray(trace.object_ids, dtype=np.int64)
    n = len(trace.id_labels) if trace.id_labels is not None else (int(codes.max()) + 1 if len(codes) else 0)
    labels = trace.id_labels if trace.id_labels is not None else np.arange(n)
    last = np.full(n, -np.inf)
    np.maximum.at(last, codes, trace.timestamps)
    return {str(label): datetime.fromtimestamp(float(t), UTC)
            for label, t in zip(labels, last, strict=True) if np.isfinite(t)}


def read_access_log(path: str | os.PathLike[str]) -> dict[str, datetime]:
    """Read a CSV access log with a header ``id,last_access`` (ISO 8601; naive times are UTC); later rows win."""
    out: dict[str, datetime] = {}
    with Path(path).open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"id", "last_access"} <= set(reader.fieldnames):
            raise ValueError(f"Expected a CSV header with columns id,last_access in {str(path)!r}. Got "
                             f"{reader.fieldnames!r} instead.")
        for row in reader:
            when = _utc(datetime.fromisoformat(row["last_access"]))
            if row["id"] not in out or when > out[row["id"]]:
                out[row["id"]] = when
    return out


def plan_lifecycle(store: LatentStore, last_access: Mapping[str, datetime] | Trace | None, *, days: float,
                   mode: str | PrecisionMode, min_psnr: float, model: str,
                   now: datetime | None = None,
                   resolve: Callable[[PrecisionMode], PrecisionMode] | None = None) -> Plan:
    """The ids of ``model`` not read for ``days`` days (by ``last_access``; never read: since ingest) and still
    stored lossless: the candidates to rewrite in ``mode`` if they pass a ``min_psnr`` (dB) check.

    Parameters
    ----------
    store
        The store (read only here).
    last_access
        Last read time per id (a mapping, or a :class:`~latentzarr.traces.Trace` with id labels and Unix-second
        timestamps); ids absent from it count as read at their ingest time. None: every id is unread.
    days
        Age threshold D in days (>= 0).
    mode
        The lossy precision mode M (text or :class:`PrecisionMode`, resolved).
    min_psnr
        The check's threshold T in dB (PSNR of the decoded pixels against the lossless decode).
    model
        Model id of the latents to consider (the decoder used for the check).
    now
        The policy's clock (UTC); default: now.
    resolve
        Turns an unresolved mode (``wstep:D``) into a resolved one, e.g.
        ``lambda m: resolve_mode(m, decoder, progress=True)``; called only when there are candidates (measuring
        the decoder's sensitivities costs C + 1 decodes), so a plan without candidates may keep the mode
        unresolved.
    """
    parsed = parse_mode(mode)
    if not parsed.lossy or not (parsed.resolved or resolve is not None):
        raise ValueError(f"Expected a lossy, resolved precision mode for the lifecycle. Got {parsed.name!r} instead.")
    if not (isinstance(days, int | float) and days >= 0):
        raise ValueError(f"Expected days >= 0. Got {days!r} instead.")
    if not (isinstance(min_psnr, int | float) and np.isfinite(min_psnr)):
        raise ValueError(f"Expected a finite min_psnr in dB. Got {min_psnr!r} instead.")
    if last_access is None:
        access: Mapping[str, datetime] = {}
    elif isinstance(last_access, Mapping):
        access = last_access
    else:
        access = last_access_from_trace(last_access)
    now = _utc(now) if now is not None else datetime.now(UTC)
    cutoff = now - timedelta(days=float(days))
    store.refresh()
    candidates: list[Candidate] = []
    skipped = {"recent": 0, "lossy": 0, "other_model": 0}
    for image_id in store.ids():
        rec = store.record(image_id)
        if rec["model"] != model:
            skipped["other_model"] += 1
            continue
        if rec["lossy"]:
            skipped["lossy"] += 1
            continue
        seen = access.get(image_id)
        when = _utc(seen) if seen is not None else _utc(rec["created"])
        if when > cutoff:
            skipped["recent"] += 1
            continue
        candidates.append(Candidate(image_id, rec["array"], int(rec["row"]), when,
                                    store.encoded_size(image_id)))
    if candidates and not parsed.resolved and resolve is not None:
        parsed = parse_mode(resolve(parsed))
    return Plan(parsed, float(days), float(min_psnr), model, now, candidates, skipped)
