"""``latentzarr vacuum``: reclaim the bytes of rows no id points to (left by ``latentzarr lifecycle`` rewrites and by
writes that died), after a grace period."""

from __future__ import annotations

import json
import re
from typing import Any

import click

from latentzarr.cli._common import human_bytes, one_line_errors, open_store
from latentzarr.errors import LatentZarrError
from latentzarr.store.vacuum import DEFAULT_COMPACT_AT, DEFAULT_GRACE_S

_UNITS_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*([smhdw]?)\s*$", re.IGNORECASE)


class Duration(click.ParamType):
    """Seconds (``90``, ``1.5``) or a number with a unit ``s``, ``m``, ``h``, ``d``, ``w`` (``30m``, ``7d``); >= 0."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        else:
            m = _DURATION.match(str(value))
            if m is None:
                self.fail(f"Expected seconds or a duration like 30m, 1h, 7d. Got {value!r} instead.", param, ctx)
            seconds = float(m.group(1)) * _UNITS_S[(m.group(2) or "s").lower()]
        if seconds < 0:
            self.fail(f"Expected a duration >= 0 (0 deletes garbage shards at once). Got {value!r} instead.",
                      param, ctx)
        return seconds


def format_duration(seconds: float) -> str:
    """``3600`` -> ``'1h'``, ``90`` -> ``'90s'``, ``604800`` -> ``'7d'`` (the largest unit that divides it)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


@click.command("vacuum", epilog="Run it after `latentzarr lifecycle` (e.g. nightly). Reads never fail because of it. "
                                "Dry run first: `latentzarr vacuum STORE --dry-run`.")
@click.argument("store")
@click.option("--grace", type=Duration(), default=None,
              help="How long a shard must have been garbage (seen by an earlier vacuum) and unwritten before it is "
                   f"deleted: seconds or 30m, 1h, 7d.  [default: {format_duration(DEFAULT_GRACE_S)}]")
@click.option("--compact-at", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Copy the live rows out of shards with at least this share (0 < x <= 1) of garbage bytes, so "
                   f"that the shard can go too.  [default: {DEFAULT_COMPACT_AT:g}]")
@click.option("--dry-run", is_flag=True, help="Change nothing; print what would be compacted and deleted now.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (progress still goes to stderr).")
@one_line_errors
def vacuum_cmd(store: str, grace: float | None, compact_at: float | None, dry_run: bool, as_json: bool) -> None:
    """Reclaim the space of rows in STORE that no id points to (old rows of `latentzarr lifecycle` rewrites,
    rows of writes that died).

    Garbage shard objects are deleted once a vacuum has seen them garbage for --grace (the first run only marks
    them, unless --grace 0); shards still holding ids but mostly garbage are compacted first (live chunks copied as
    stored, checked, ids moved). No latent changes a bit. STORE takes the same URLs as the other commands;
    object-store credentials and endpoint come from the environment (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...).
    """
    grace = DEFAULT_GRACE_S if grace is None else grace
    compact_at = DEFAULT_COMPACT_AT if compact_at is None else compact_at
    open_store(store)  # fails on a path without a store (mode "a" would create one)
    try:
        st = open_store(store, mode="a")
        report = st.vacuum(grace=grace, compact_at=compact_at, dry_run=dry_run,
                           progress=lambda line: click.echo(line, err=True))
    except OSError as exc:  # a read-only file system (EROFS), a full disk, ...
        if isinstance(exc, LatentZarrError | PermissionError | FileNotFoundError | FileExistsError):
            raise  # one_line_errors words these
        raise click.ClickException(f"Expected to read and write the store {store!r} (vacuum takes the store's write "
                                   f"lock, with --dry-run too). Got {type(exc).__name__}: {exc}. Check that it is "
                                   "writable and reachable, then run it again.") from exc
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    click.echo(format_report(store, report.to_dict()))


def format_report(store: str, r: dict[str, Any]) -> str:
    """Render a ``VacuumReport.to_dict()`` as a few aligned lines (sizes in bytes in ``r``, shown as KiB/MiB)."""
    dry = r["dry_run"]
    grace = format_duration(r["grace_s"])
    lines = [f"vacuum {store} (grace {grace}, compact at {r['compact_at']:.0%} garbage)"
             + (": DRY RUN, nothing changed" if dry else "")]

    def row(label: str, text: str) -> None:
        lines.append(f"  {label:<14} {text}")

    row("shards", f"{r['shards']} scanned")
    row("would compact" if dry else "compacted",
        f"{r['compacted_shards']} shards, {r['relocated_ids']} ids moved ({human_bytes(r['relocated_bytes'])} copied)")
    row("would delete" if dry else "deleted",
        f"{r['deleted_shards']} shards, {human_bytes(r['reclaimed_bytes'])} reclaimed")
    waiting = f"{r['waiting_shards']} shards, {human_bytes(r['waiting_bytes'])}"
    if r["waiting_shards"]:
        waiting += (f": the next vacuum deletes them once they have been garbage and unwritten for the grace period "
                    f"({grace}{', counted from the first non-dry run' if dry else ''})")
    row("waiting", waiting)
    after = "(unchanged, dry run)" if dry else human_bytes(r["stored_bytes_after"])
    row("stored", f"{human_bytes(r['stored_bytes_before'])} -> {after}")
    if r["unreadable"]:
        row("UNREADABLE", f"{len(r['unreadable'])} shards with a damaged index, left alone: "
                          f"{', '.join(r['unreadable'][:5])}{' ...' if len(r['unreadable']) > 5 else ''}")
        lines.append(f"  check the store: latentzarr verify {store}")
    else:
        row("unreadable", "0")
    return "\n".join(lines)
