"""``latentzarr lifecycle``: re-store latents not read for D days in a lossy mode where their PSNR allows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from latentzarr.cli._common import human_bytes, one_line_errors, open_store, plural


@click.command("lifecycle", epilog="The old rows of rewritten latents stay on disk until `latentzarr vacuum STORE` "
                                    "reclaims them (after its grace period; e.g. nightly).")
@click.argument("store")
@click.option("--days", type=click.FloatRange(0), required=True, help="Rewrite objects not read for this many days.")
@click.option("--mode", required=True, help="Lossy precision mode: q8, bitround:7, step:0.04...")
@click.option("--min-psnr", type=float, required=True, help="Rewrite only if the decoded PSNR stays >= this (dB).")
@click.option("--model", default="taef2", show_default=True, help="Model id of the latents (and decoder to check).")
@click.option("--access-log", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV with header id,last_access (ISO 8601) giving each id's last read.")
@click.option("--trace", "trace_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A request trace instead: any format `latentzarr trace` reads (e.g. CSV with the header "
              "timestamp,object_id[,size,model]), whose object ids are the store's ids and whose timestamps are "
              "Unix seconds. Traces from `latentzarr trace synth` are read too (ids 0..N-1, times from 1970).")
@click.option("--dry-run", is_flag=True, help="Check and print what would be saved; write nothing.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path),
              help="JSON-lines journal (appended; a re-run resumes from it). Required unless --dry-run.")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=None,
              help="Ids per batch (one task, one rewrite).  [default: the store's shard size]")
@click.option("--scheduler", help="Dask scheduler address: run the batches as tasks there.")
@one_line_errors
def lifecycle_cmd(store: str, days: float, mode: Any, min_psnr: float, model: str, access_log: Path | None,
                  trace_path: Path | None, dry_run: bool, report: Path | None, batch_size: int | None,
                  scheduler: str | None) -> None:
    """Rewrite the latents in STORE not read for --days at --mode when their PSNR >= --min-psnr; keep the rest."""
    from latentzarr.lifecycle import apply_lifecycle, plan_lifecycle, read_access_log

    if access_log and trace_path:
        raise click.UsageError("Expected at most one of --access-log and --trace. Got both.")
    if report is None and not dry_run:
        raise click.UsageError("Expected --report (the resumable journal) unless --dry-run. Got neither.")
    from latentzarr.lifecycle.policy import last_access_from_trace
    from latentzarr.precision import parse_mode, resolve_mode

    parse_mode(mode)  # a bad mode fails before anything is read
    st = open_store(store)  # fails on a path without a store (mode "a" would create one)
    if not dry_run:
        st = open_store(store, mode="a")
    access = None
    if access_log:
        access = read_access_log(access_log)
    elif trace_path:
        from latentzarr.traces import read_trace

        access = last_access_from_trace(read_trace(trace_path))
    if access is not None:
        known = sum(image_id in st for image_id in access)
        click.echo(f"access: {plural(len(access), 'id')} read, {known} of them in the store (ids never read count "
                   "as read at their ingest)", err=True)

    def resolve(unresolved):  # wstep:D: steps from the decoder's channel sensitivities (cached per model)
        from latentzarr.models import load_model

        click.echo(f"{unresolved.name}: measuring the decoder's channel sensitivities (once per model setup)",
                   err=True)
        return resolve_mode(unresolved, load_model(model, device="cpu"), progress=True)

    plan = plan_lifecycle(st, access, days=days, mode=mode, min_psnr=min_psnr, model=model, resolve=resolve)
    click.echo(f"plan: {plural(len(plan.candidates), 'candidate')} ({human_bytes(plan.bytes_now)}), "
               f"skipped {plan.skipped}")
    client = None
    if scheduler:
        from distributed import Client

        client = Client(scheduler)
    try:
        result = apply_lifecycle(st, plan, report_path=None if dry_run else report, client=client, dry_run=dry_run,
                                 batch_size=batch_size, echo=_progress if plan.candidates else None)
    finally:
        if client is not None:
            client.close()
    out = result.to_dict()
    verb = "would save" if dry_run else "saved"
    click.echo(f"{plan.mode.name}: {result.rewritten} {'to rewrite' if dry_run else 'rewritten'}, {result.kept} kept "
               f"lossless, {result.skipped} skipped, {result.resumed} already done; {human_bytes(result.bytes_now)} "
               f"-> {human_bytes(result.bytes_after)} ({verb} {human_bytes(result.bytes_saved)})")
    click.echo(json.dumps(out))


def _progress(line: str) -> None:
    """apply_lifecycle's progress lines (one per batch), on stderr so that stdout stays the summary and JSON."""
    if not line.startswith("dry run"):  # its closing line repeats the summary printed on stdout
        click.echo(line, err=True)
