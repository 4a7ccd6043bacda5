"""Helpers shared by the CLI modules: opening stores, loading models, one-line errors."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from latentzarr.errors import LatentZarrError, NotALatentStoreError


def one_line_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into ``Error: <reason>`` and exit status 1 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (LatentZarrError, FileNotFoundError, FileExistsError, PermissionError, ValueError) as exc:
            msg = str(exc) if not isinstance(exc, KeyError) or isinstance(exc, LatentZarrError) else repr(exc)
            if isinstance(exc, NotALatentStoreError) and exc.url is not None:
                msg = not_a_store_message(exc)
            raise click.ClickException(msg.splitlines()[0] if msg else type(exc).__name__) from exc

    return wrapper


def not_a_store_message(exc: NotALatentStoreError) -> str:
    """The CLI's words for a missing store: how to make one with the CLI, not with the Python API."""
    head = f"Expected a latentzarr store at {exc.url!r}. Got {exc.found} instead."
    if exc.found == "no Zarr v3 group there":
        return f"{head} Create one with `latentzarr ingest-images DIR {exc.url}` (or check the path)."
    return f"{head} Pass the path of a latentzarr store (one `latentzarr ingest-images` wrote)."


def open_store(url: str, mode: str = "r"):
    """Open a latentzarr store (local path or fsspec URL)."""
    from latentzarr.store import LatentStore

    return LatentStore.open(url, mode=mode)


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``plural(1, "file")`` -> ``'1 file'``; ``plural(2, "file")`` -> ``'2 files'``."""
    return f"{n} {noun if n == 1 else (nouns or noun + 's')}"


def human_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def trace_format_option(help: str = "Trace format (auto: from the file name and first line).") -> Callable:
    """The ``--format`` option of commands that read a request trace."""
    return click.option("--format", "fmt", type=click.Choice(["auto", "parquet", "csv", "tencent", "cdn"]),
                        default="auto", show_default=True, help=help)
