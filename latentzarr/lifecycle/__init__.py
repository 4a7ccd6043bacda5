"""Lifecycle policy: re-store latents that nobody reads in a lossy precision mode, where the pixels allow it.

*Objects not read for D days are rewritten at mode M if their measured PSNR against the lossless decode stays
>= T dB, else kept lossless.* :func:`plan_lifecycle` picks the candidates, :func:`apply_lifecycle` checks and
rewrites them (as Dask tasks when given a client), atomically per batch, with a resumable JSON-lines report.
"""

from __future__ import annotations

from latentzarr.lifecycle.policy import Candidate, Plan, last_access_from_trace, plan_lifecycle, read_access_log
from latentzarr.lifecycle.run import LifecycleReport, apply_lifecycle, check_batch, read_journal

__all__ = [
    "Candidate",
    "LifecycleReport",
    "Plan",
    "apply_lifecycle",
    "check_batch",
    "last_access_from_trace",
    "plan_lifecycle",
    "read_access_log",
    "read_journal",
]
