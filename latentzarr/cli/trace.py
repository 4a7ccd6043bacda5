"""``latentzarr trace``: write synthetic request traces and analyse traces."""

from __future__ import annotations

import click

from latentzarr.cli._common import one_line_errors, trace_format_option

__all__ = ["trace"]

_SUFFIXES = {"k": 10**3, "m": 10**6, "g": 10**9}


class _Count(click.ParamType):
    """A positive integer written as ``10000000``, ``10_000_000``, ``1e7`` or ``10M``."""

    name = "count"

    def convert(self, value, param, ctx):  # click.ParamType.convert
        if isinstance(value, int):
            n = value
        else:
            text = str(value).strip().lower().replace("_", "")
            try:
                if text and text[-1] in _SUFFIXES:
                    n = int(float(text[:-1]) * _SUFFIXES[text[-1]])
                else:
                    f = float(text)
                    n = int(f) if f == int(f) else -1
            except (ValueError, OverflowError):
                n = -1
        if n < 1:
            self.fail(f"Expected a positive integer such as 10000000, 1e7 or 10M. Got {value!r} instead.", param, ctx)
        return n


@click.group("trace")
def trace() -> None:
    """Request traces: synthesise the published AI-image workload, or analyse a trace."""


@trace.command("synth")
@click.option("--requests", "n_requests", type=_Count(), required=True, help="Number of requests (e.g. 10M).")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, writable=True),
    required=True,
    help="Output file: .parquet (recommended) or .csv.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--days", type=float, default=None, help="Trace length in days [default: 1065, i.e. 35 months].")
@click.option("--model", "models", multiple=True, help="Model id to assign objects to (repeatable).")
@one_line_errors
def synth_cmd(n_requests: int, out: str, seed: int, days: float | None, models: tuple[str, ...]) -> None:
    """Write a synthetic trace reproducing the published workload statistics."""
    from latentzarr.traces.readers import write_trace
    from latentzarr.traces.synth import synth_trace

    overrides = {"days": days} if days is not None else {}
    tr = synth_trace(n_requests, seed=seed, models=models or None, **overrides)
    path = write_trace(tr, out)
    click.echo(f"wrote {len(tr)} requests for {tr.n_objects} objects over {tr.duration / 86400:.0f} days to {path}")


@trace.command("analyze")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write the statistics as JSON to this file.",
)
@click.option(
    "--plots",
    "plots",
    type=click.Path(file_okay=False),
    default=None,
    help="Write PNG plots of the four observations to this folder.",
)
@trace_format_option("Trace format.")
@click.option(
    "--backend",
    type=click.Choice(["auto", "pandas", "cudf"]),
    default="auto",
    show_default=True,
    help="dask.dataframe backend (auto: cudf when a GPU is usable).",
)
@click.option(
    "--max-bad-fraction",
    type=click.FloatRange(0, 1),
    default=0.01,
    show_default=True,
    help="Fail when more than this share of lines is malformed.",
)
@click.option(
    "--sample-requests",
    type=_Count(),
    default=400_000,
    show_default=True,
    help="Target SHARDS sample size for the miss-ratio curves.",
)
@one_line_errors
def analyze_cmd(
    path: str,
    json_out: str | None,
    plots: str | None,
    fmt: str,
    backend: str,
    max_bad_fraction: float,
    sample_requests: int,
) -> None:
    """Measure popularity, decay, re-access intervals and miss-ratio curves of the trace at PATH."""
    import warnings

    from latentzarr.traces.analysis import analyze_trace, format_table
    from latentzarr.traces.plots import write_json
    from latentzarr.traces.readers import TraceFormatWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TraceFormatWarning)
        stats = analyze_trace(
            path,
            format=fmt,
            backend=backend,
            max_bad_fraction=max_bad_fraction,
            sample_requests=sample_requests,
            out_dir=plots,
        )
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    if json_out:
        write_json(stats, json_out)
    click.echo(format_table(stats))
    if stats["bad_lines"]:
        click.echo(f"{stats['bad_lines']} malformed lines skipped", err=True)
