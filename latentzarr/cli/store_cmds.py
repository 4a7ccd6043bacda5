"""Store commands: ``ingest-images``, ``ls``, ``info``, ``verify``, ``export``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from latentzarr.cli._common import human_bytes, one_line_errors, open_store, plural

DTYPES = click.Choice(["float16", "bfloat16", "float32"])


@click.command("ingest-images")
@click.argument("directory", type=click.Path(exists=True, file_okay=True, path_type=Path))
@click.argument("store")
@click.option("--model", default="taef2", show_default=True, help="Model name, weights folder, or diffusers:<id>.")
@click.option("--size", type=click.IntRange(8, 8192), help="Resize so the longest side is SIZE pixels first.")
@click.option("--pad", is_flag=True,
              help="Pad sides that are not a multiple of 8 (repeating the edge pixels) instead of centre-cropping "
              "them; the stored picture is then the padded one.")
@click.option("-r", "--recursive", is_flag=True,
              help="Also ingest the images in subfolders; ids are then paths below DIRECTORY (cats/tom).")
@click.option("--dtype", type=DTYPES, default="float16", show_default=True, help="Stored latent dtype.")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=8, show_default=True,
              help="Images per commit (put) to the store.")
@click.option("--no-digest", is_flag=True, help="Skip the decode that records a pixel digest per image.")
@click.option("--shard-images", type=click.IntRange(1, 65536), default=64, show_default=True,
              help="Images per shard object when the store is created.")
@one_line_errors
def ingest_images_cmd(directory: Path, store: str, model: str, size: int | None, pad: bool, recursive: bool,
                      dtype: str, batch_size: int, no_digest: bool, shard_images: int) -> None:
    """Encode the images in DIRECTORY (or one file) into the latent STORE (created if missing).

    Ids are the file names without suffix; ids already in the store are skipped. Pictures are changed to fit
    the model, and the summary counts each change: transparent pixels are composited on white, and sides that
    are not a multiple of 8 pixels are centre-cropped (--pad pads them instead). Unreadable or too small files
    are skipped and listed; when nothing was ingested and a file failed, the exit status is 1 and STORE is
    neither created nor changed. Subfolders are entered only with --recursive (the summary says when some were
    not).
    """
    from latentzarr.ingest import ingest_arrays, load_images
    from latentzarr.models import load_model
    from latentzarr.store import LatentStore

    ae = load_model(model)
    pictures, loaded = load_images(directory, ae.downscale, size=size, pad=pad, recursive=recursive,
                                   progress=True)
    report, total = loaded, 0
    if pictures:
        st = LatentStore.open(store, mode="a", shard_images=shard_images)
        report = ingest_arrays(st, pictures, ae, dtype=dtype, batch_size=batch_size, digest=not no_digest,
                               progress=True).merge(loaded)
        total = len(st)
    for image_id, reason in report.skipped.items():
        click.echo(f"skipped {image_id!r}: {reason}", err=True)
    if not report.ids and report.failed:
        raise click.ClickException(f"Expected at least one image to ingest. Got none: {_skip_summary(report)}; "
                                   f"{store} was not changed.")
    click.echo(f"ingested {plural(len(report.ids), 'image')} into {store} ({total} in total)")
    for line in ingest_summary(report, ae.downscale):
        click.echo(line)


def _skip_summary(report) -> str:
    kinds = ", ".join(f"{n} {kind}" for kind, n in report.skip_counts().items())
    return f"skipped {plural(len(report.skipped), 'file')} ({kinds})"


def ingest_summary(report, downscale: int) -> list[str]:
    """Lines saying what an ingest changed in the pictures and what it skipped, by reason (none if nothing)."""
    changes = []
    if report.flattened:
        changes.append(f"{len(report.flattened)} had transparent pixels flattened on white")
    if report.cropped:
        changes.append(f"{len(report.cropped)} centre-cropped to a multiple of {downscale} (--pad pads instead)")
    if report.padded:
        changes.append(f"{len(report.padded)} padded to a multiple of {downscale}")
    lines = [f"changed: {'; '.join(changes)}"] if changes else []
    if report.skipped:
        lines.append(f"{_skip_summary(report)}; each is listed above")
    if report.subfolders:
        shown = ", ".join(report.subfolders[:5]) + (", ..." if len(report.subfolders) > 5 else "")
        lines.append(f"not entered {plural(len(report.subfolders), 'subfolder')} ({shown}); --recursive ingests "
                     "their images too")
    return lines


@click.command("ls")
@click.argument("store")
@click.option("-l", "--long", "long_", is_flag=True, help="Show array, row, shape and dtype per id.")
@click.option("--limit", type=click.IntRange(0), default=0, help="Show at most this many ids (0: all).")
@one_line_errors
def ls_cmd(store: str, long_: bool, limit: int) -> None:
    """List the image ids in STORE."""
    st = open_store(store)
    for n, image_id in enumerate(st.ids()):
        if limit and n >= limit:
            break
        if long_:
            rec = st.record(image_id)
            shape = "x".join(map(str, rec["shape"]))
            click.echo(f"{image_id}\t{rec['array']}\t{rec['row']}\t{shape}\t{rec['dtype']}")
        else:
            click.echo(image_id)


@click.command("info")
@click.argument("store")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@one_line_errors
def info_cmd(store: str, as_json: bool) -> None:
    """Counts, bytes, bytes per image and compression of STORE."""
    info = open_store(store).info()
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    click.echo(format_info(info))


@click.command("verify")
@click.argument("store")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@one_line_errors
def verify_cmd(store: str, as_json: bool) -> None:
    """Re-read every latent of STORE and compare its SHA-256 with the index; exit 1 when any is damaged.

    Read-only. Prints how many were checked and ok, then each mismatched or unreadable id (a damaged or missing
    chunk), one per line. A store that does not answer is an error, never reported as damage.
    """
    report = open_store(store).verify()
    bad = len(report["mismatched"]) + len(report["unreadable"])
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(f"checked {report['checked']}, ok {report['ok']}, damaged {bad}")
        for image_id in report["mismatched"]:
            click.echo(f"mismatched  {image_id}: its bits differ from the digest recorded at ingest")
        for image_id, why in report["unreadable"].items():
            click.echo(f"unreadable  {image_id}: {why}")
    if bad:
        raise SystemExit(1)


def format_info(info: dict) -> str:
    """Render ``LatentStore.info()`` as a small table, with a legend saying what each ratio is."""
    lines = [f"store {info['url']} (format version {info['format_version']})",
             f"{'array':<36} {'images':>7} {'stored':>10} {'per image':>10} {'ratio':>7} {'of PNG':>7}"]
    for arr in [*info["arrays"], {**info, "name": "total"}]:
        n, ratio, red = arr["images"], arr.get("compression_ratio"), arr.get("data_reduction")
        lines.append(
            f"{arr['name']:<36} {n:>7} {human_bytes(arr['stored_bytes']):>10} "
            f"{human_bytes(arr['stored_bytes'] / n) if n else '-':>10} "
            f"{f'{ratio:.2f}x' if ratio else '-':>7} {f'{1 - red:.0%}' if red is not None else '-':>7}"
        )
    lines.append("stored: every object, including rows no id points to until a vacuum; ratio: raw latent bytes / "
                 "stored; of PNG: stored bytes as a share of the optimised PNGs of the same images")
    red = info.get("data_reduction")
    if red is not None:
        lines.append(f"the latents take {abs(red):.1%} {'fewer' if red >= 0 else 'more'} bytes than those PNGs "
                     f"(data_reduction {red:.3f})")
    return "\n".join(lines)


@click.command("export")
@click.argument("store")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.argument("ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Export every id in the store.")
@click.option("--ids-file", type=click.File("r"), help="A file with one id per line.")
@click.option("--format", "fmt", type=click.Choice(["png", "webp", "jpeg"]), default="png", show_default=True)
@click.option("--size", type=click.IntRange(16, 4096), help="Longest side in pixels (never upscaled).")
@click.option("--quality", type=click.IntRange(1, 100), help="WebP/JPEG quality.")
@click.option("--model", help="Override the model recorded in the store.")
@one_line_errors
def export_cmd(store: str, out: Path, ids: tuple[str, ...], all_: bool, ids_file, fmt: str, size: int | None,
               quality: int | None, model: str | None) -> None:
    """Decode IDS (or --all) from STORE into image files under OUT, checking the ingest pixel digests."""
    from latentzarr.export import export_images
    from latentzarr.models import load_model

    st = open_store(store)
    wanted = list(ids) + ([line.strip() for line in ids_file if line.strip()] if ids_file else [])
    if all_:
        wanted = list(st.ids())
    if not wanted:
        raise click.UsageError("Expected ids, --ids-file or --all. Got none.")
    report = export_images(st, wanted, out, format=fmt, size=size, quality=quality,
                           model=load_model(model) if model else None, progress=True)
    counts = {v: list(report.digests.values()).count(v) for v in set(report.digests.values())}
    click.echo(f"wrote {plural(len(report.paths), 'file')} to {out}; digest check: {counts}")
    if report.mismatches:
        raise click.ClickException(f"decode differs from ingest on the same setup for {report.mismatches[:5]}")
