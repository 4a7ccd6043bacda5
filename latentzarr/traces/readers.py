"""Read and write request traces: Parquet / CSV columnar traces and two public text formats.

Formats (``format=`` of :func:`read_trace`):

``parquet``
    Columns ``timestamp`` (float64 seconds), ``object_id`` (int64 or string), optional ``size`` (int64 bytes) and
    ``model`` (string). What :func:`write_trace` and ``latentzarr trace synth`` write: one file, row groups of
    1 M rows, key ``latentzarr.trace`` in the file metadata (JSON: format version, whether ids are dense codes,
    provenance such as the generator parameters).
``csv``
    Comma-separated with a header naming the same columns (``id`` / ``obj_id`` are accepted for ``object_id``,
    ``time`` / ``ts`` for ``timestamp``); ``timestamp`` is numeric seconds or ISO-8601 (converted to Unix seconds).
``tencent``
    The 2016 Tencent QQ photo-cache trace (SNIA IOTTA, "Demystifying cache policies for photo stores at scale",
    ICS 2018): space-separated ``timestamp photo_id image_format size_class return_bytes ...``; further fields
    (hit flag, terminal type, response time) are ignored. The timestamp is ``YYYYMMDDhhmmss`` (14 digits, read as
    UTC) or numeric seconds; the photo id must be hexadecimal. Each (photo, format, size class) is one cached
    object by default (``tencent_key="rendition"``); ``tencent_key="photo"`` merges a photo's renditions. The
    field layout follows the issue's description and the published paper; no sample of the real files could be
    checked here.
``cdn``
    ``timestamp id size`` separated by white space (webcachesim / LRB's Wikipedia CDN traces, libCacheSim's txt
    traces); extra columns (LRB's features) are ignored.

Malformed lines (wrong field count, unparsable or negative numbers, bad ids) are skipped and counted: the
returned :class:`~latentzarr.traces.trace.Trace` has ``bad_lines`` and ``bad_examples`` (the first five, quoted
with line numbers). A :class:`TraceFormatWarning` reports them; when they are more than ``max_bad_fraction`` of
all non-empty lines a :class:`~latentzarr.errors.TraceFormatError` is raised instead. Empty lines and lines
starting with ``#`` are not requests and are not counted. Text is read in chunks of ``chunk_lines`` lines.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from latentzarr.errors import TraceFormatError
from latentzarr.traces.trace import DEFAULT_OBJECT_SIZE, Trace

__all__ = [
    "TRACE_FORMATS",
    "TraceFormatWarning",
    "convert_trace",
    "detect_format",
    "read_trace",
    "write_trace",
]

TRACE_FORMATS = ("parquet", "csv", "tencent", "cdn")
_META_KEY = b"latentzarr.trace"
_FORMAT_VERSION = 1
_N_EXAMPLES = 5
_ALIASES = {"id": "object_id", "obj_id": "object_id", "time": "timestamp", "ts": "timestamp", "obj_size": "size"}


class TraceFormatWarning(UserWarning):
    """Some lines of a trace were malformed and skipped (fewer than ``max_bad_fraction``)."""


class _BadLines:
    """Counts malformed lines and keeps the first few, quoted."""

    def __init__(self) -> None:
        self.count = 0
        self.lines = 0
        self.examples: list[tuple[int, str]] = []

    def add(self, linenos: np.ndarray, texts: list[str] | pd.Series) -> None:
        self.count += len(linenos)
        for no, text in zip(linenos[: _N_EXAMPLES - len(self.examples)], list(texts)[:_N_EXAMPLES], strict=False):
            self.examples.append((int(no), str(text)[:200]))

    def check(self, path: str | os.PathLike, fmt: str, max_bad_fraction: float) -> None:
        if self.lines == 0:
            raise TraceFormatError(
                f"Expected at least one request line in {str(path)!r} ({fmt} format). Got an empty trace instead."
            )
        if self.count == 0:
            return
        fraction = self.count / self.lines
        quoted = "; ".join(f"line {n}: {t!r}" for n, t in self.examples)
        msg = f"{self.count} of {self.lines} lines ({fraction:.2%}) of {str(path)!r} are not valid {fmt} requests"
        if fraction > max_bad_fraction:
            raise TraceFormatError(
                f"Expected at most {max_bad_fraction:.2%} malformed lines. Got {msg} instead. First ones: {quoted}. "
                f"Check format= (one of {', '.join(TRACE_FORMATS)}) or raise max_bad_fraction."
            )
        warnings.warn(f"Skipped malformed lines: {msg}. First ones: {quoted}", TraceFormatWarning, stacklevel=3)


def detect_format(path: str | os.PathLike) -> str:
    """Guess a trace's format from its suffix, else from its first request line.

    ``.parquet`` / ``.pq`` is Parquet, ``.csv`` CSV; otherwise a line of at least 5 white-space separated fields
    whose second field is hexadecimal is ``tencent``, anything else ``cdn``.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".csv":
        return "csv"
    with open(p, encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) >= 5 and all(c in "0123456789abcdefABCDEF" for c in fields[1]) and not fields[1].isdigit():
                return "tencent"
            return "cdn"
    return "cdn"


def _check_fraction(max_bad_fraction: float) -> float:
    if not 0.0 <= float(max_bad_fraction) <= 1.0:
        raise ValueError(f"Expected max_bad_fraction in [0, 1]. Got {max_bad_fraction!r} instead.")
    return float(max_bad_fraction)


def _check_format(format: str, path: str | os.PathLike) -> str:
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in TRACE_FORMATS:
        raise ValueError(f"Expected format 'auto' or one of {TRACE_FORMATS}. Got {format!r} instead.")
    return fmt


# ------------------------------------------------------------------------------------------------ text parsing
def _parse_time(col: pd.Series, *, calendar: bool, iso: bool) -> np.ndarray:
    """Seconds as float64 (NaN where unparsable). ``calendar``: 14-digit YYYYMMDDhhmmss; ``iso``: ISO-8601."""
    out = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    if calendar:
        cal = (col.str.len() == 14) & col.str.isdigit()
        if cal.any():
            dt = pd.to_datetime(col[cal], format="%Y%m%d%H%M%S", errors="coerce", utc=True)
            out[cal.to_numpy()] = _unix_seconds(dt)
    if iso:
        retry = np.isnan(out) & col.notna().to_numpy()
        if retry.any():
            dt = pd.to_datetime(col[retry], format="ISO8601", errors="coerce", utc=True)
            out[retry] = _unix_seconds(dt)
    out[~np.isfinite(out)] = np.nan
    return out


def _unix_seconds(dt: pd.Series) -> np.ndarray:
    secs = (dt - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return secs.to_numpy(dtype=np.float64, na_value=np.nan)


def _bool(s: pd.Series) -> np.ndarray:
    """A writable bool array from a Series of True/False/missing (missing is False)."""
    return pd.array(s, dtype="boolean").fillna(False).to_numpy(dtype=bool)


def _parse_size(col: pd.Series) -> np.ndarray:
    """Sizes as float64 (NaN where not a non-negative integer)."""
    v = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    v[(v < 0) | (v != np.floor(v)) | (v >= 2.0**62)] = np.nan
    return v


class _TextChunks:
    """Parse a text trace into DataFrames (timestamp, label, size[, model]) chunk by chunk."""

    def __init__(
        self, path: str | os.PathLike, fmt: str, *, chunk_lines: int, default_size: int, tencent_key: str
    ) -> None:
        if tencent_key not in ("rendition", "photo"):
            raise ValueError(f"Expected tencent_key 'rendition' or 'photo'. Got {tencent_key!r} instead.")
        self.path, self.fmt = path, fmt
        self.chunk_lines, self.default_size, self.tencent_key = int(chunk_lines), int(default_size), tencent_key
        self.bad = _BadLines()
        self.columns: list[str] = []  # csv header, normalised
        self.has_model = False

    def __iter__(self) -> Iterator[pd.DataFrame]:
        with open(self.path, encoding="utf-8", errors="replace") as f:
            lineno = 0
            while True:
                raw = list(islice(f, self.chunk_lines))
                if not raw:
                    return
                nos, lines = [], []
                for i, line in enumerate(raw, start=lineno + 1):
                    s = line.strip()
                    if s and not s.startswith("#"):
                        nos.append(i)
                        lines.append(s)
                lineno += len(raw)
                if self.fmt == "csv" and not self.columns and lines:
                    self._header(lines[0])
                    nos, lines = nos[1:], lines[1:]
                if lines:
                    yield self._parse(np.asarray(nos, dtype=np.int64), lines)

    def _header(self, line: str) -> None:
        cols = [_ALIASES.get(c.strip().lower(), c.strip().lower()) for c in line.split(",")]
        if "timestamp" not in cols or "object_id" not in cols or len(set(cols)) != len(cols):
            raise TraceFormatError(
                f"Expected a CSV header naming 'timestamp' and 'object_id' (optional 'size', 'model') once each. "
                f"Got {line!r} instead."
            )
        self.columns = cols
        self.has_model = "model" in cols

    def _parse(self, nos: np.ndarray, lines: list[str]) -> pd.DataFrame:
        s = pd.Series(lines, dtype=object)
        if self.fmt == "csv":
            width = len(self.columns)
            parts = s.str.split(",", n=width, expand=True).reindex(columns=range(width + 1))
            bad = parts[width].notna().to_numpy() | parts[width - 1].isna().to_numpy()  # too many / too few
            cols = {name: parts[i].str.strip() for i, name in enumerate(self.columns)}
            ts = _parse_time(cols["timestamp"], calendar=False, iso=True)
            label = cols["object_id"]
            size = _parse_size(cols["size"]) if "size" in cols else None
        else:
            width = 5 if self.fmt == "tencent" else 3
            parts = s.str.split(n=width, expand=True).reindex(columns=range(width + 1))
            bad = parts[width - 1].isna().to_numpy().copy()  # too few fields
            ts = _parse_time(parts[0], calendar=self.fmt == "tencent", iso=False)
            label = parts[1]
            size = _parse_size(parts[width - 1])
            if self.fmt == "tencent":
                bad |= ~_bool(label.str.fullmatch(r"[0-9A-Fa-f]+"))
                if self.tencent_key == "rendition":
                    label = label.str.cat([parts[2], parts[3]], sep=":")
        bad |= np.isnan(ts) | ~_bool(label.str.len() > 0)
        if size is not None:
            bad |= np.isnan(size)
        self.bad.lines += len(lines)
        if bad.any():
            idx = np.flatnonzero(bad)
            self.bad.add(nos[idx], s.iloc[idx[:_N_EXAMPLES]])
        good = ~bad
        out = {
            "timestamp": ts[good],
            "label": label[good].to_numpy(dtype=object),
            "size": size[good].astype(np.int64) if size is not None else np.full(int(good.sum()), self.default_size),
        }
        if self.has_model:
            out["model"] = cols["model"][good].to_numpy(dtype=object)
        return pd.DataFrame(out)


class _Coder:
    """Dense int64 codes for labels in first-appearance order, across chunks."""

    def __init__(self) -> None:
        self.codes: dict[object, int] = {}

    def encode(self, labels: np.ndarray) -> np.ndarray:
        local, uniques = pd.factorize(labels, sort=False)
        d = self.codes
        mapping = np.fromiter((d.setdefault(u, len(d)) for u in uniques), dtype=np.int64, count=len(uniques))
        return mapping[local]

    def labels(self) -> np.ndarray:
        return np.asarray(list(self.codes), dtype=object)


# ------------------------------------------------------------------------------------------------ parquet
def _parquet_meta(path: str | os.PathLike) -> dict:
    md = pq.read_schema(path).metadata or {}
    try:
        return json.loads(md[_META_KEY]) if _META_KEY in md else {}
    except (ValueError, TypeError):
        return {}


def _read_parquet(path: str | os.PathLike, default_size: int, bad: _BadLines) -> tuple[dict, bool]:
    names = pq.read_schema(path).names
    cols = {_ALIASES.get(n.lower(), n.lower()): n for n in names}
    if "timestamp" not in cols or "object_id" not in cols:
        raise TraceFormatError(
            f"Expected Parquet columns 'timestamp' and 'object_id' (optional 'size', 'model'). Got {names!r} instead."
        )
    wanted = [cols[c] for c in ("timestamp", "object_id", "size", "model") if c in cols]
    df = pq.read_table(path, columns=wanted).to_pandas()
    df.columns = [_ALIASES.get(c.lower(), c.lower()) for c in df.columns]
    ts = pd.to_numeric(df["timestamp"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    badm = ~np.isfinite(ts) | df["object_id"].isna().to_numpy()
    if "size" in df:
        size = _parse_size(df["size"])
        badm |= np.isnan(size)
    bad.lines += len(df)
    if badm.any():
        idx = np.flatnonzero(badm)
        bad.add(idx + 1, [repr(tuple(r)) for r in df.iloc[idx[:_N_EXAMPLES]].itertuples(index=False)])
    good = ~badm
    out = {
        "timestamp": ts[good],
        "label": df["object_id"].to_numpy()[good],
        "size": size[good].astype(np.int64) if "size" in df else np.full(int(good.sum()), default_size),
    }
    if "model" in df:
        out["model"] = df["model"].to_numpy(dtype=object)[good]
    dense = bool(_parquet_meta(path).get("dense_ids")) and not badm.any()
    return out, dense


# ------------------------------------------------------------------------------------------------ public API
def read_trace(
    path: str | os.PathLike,
    format: str = "auto",
    *,
    max_bad_fraction: float = 0.01,
    default_size: int = DEFAULT_OBJECT_SIZE,
    tencent_key: str = "rendition",
    keep_labels: bool = True,
    chunk_lines: int = 1_000_000,
) -> Trace:
    """Read a trace file into a :class:`~latentzarr.traces.trace.Trace` (arrays in memory, request order kept).

    Parameters
    ----------
    path
        The trace file.
    format
        ``"auto"`` (see :func:`detect_format`) or one of :data:`TRACE_FORMATS` (module docstring).
    max_bad_fraction
        Largest tolerated share of malformed lines among non-empty lines, in [0, 1]; above it
        :class:`~latentzarr.errors.TraceFormatError` is raised, below it a :class:`TraceFormatWarning`.
    default_size
        Size in bytes given to every request when the format has no size column.
    tencent_key
        ``"rendition"``: (photo id, format, size class) is the object; ``"photo"``: the photo id alone.
    keep_labels
        Keep the original ids in ``Trace.id_labels``.
    chunk_lines
        Lines parsed per chunk (text formats); bounds the parser's working memory.
    """
    fmt = _check_format(format, path)
    max_bad_fraction = _check_fraction(max_bad_fraction)
    bad = _BadLines()
    coder = _Coder()
    if fmt == "parquet":
        cols, dense = _read_parquet(path, int(default_size), bad)
        bad.check(path, fmt, max_bad_fraction)
        if dense:
            codes = np.asarray(cols["label"], dtype=np.int64)
            labels = None
        else:
            codes = coder.encode(cols["label"])
            labels = coder.labels() if keep_labels else None
        models = cols.get("model")
    else:
        reader = _TextChunks(path, fmt, chunk_lines=chunk_lines, default_size=default_size, tencent_key=tencent_key)
        parts: dict[str, list[np.ndarray]] = {"timestamp": [], "code": [], "size": [], "model": []}
        for chunk in reader:
            parts["timestamp"].append(chunk["timestamp"].to_numpy())
            parts["code"].append(coder.encode(chunk["label"].to_numpy()))
            parts["size"].append(chunk["size"].to_numpy())
            if "model" in chunk:
                parts["model"].append(chunk["model"].to_numpy())
        bad = reader.bad
        bad.check(path, fmt, max_bad_fraction)
        cols = {k: np.concatenate(v) if v else np.empty(0) for k, v in parts.items()}
        codes = cols["code"]
        models = cols["model"] if reader.has_model else None
        labels = coder.labels() if keep_labels else None
    return Trace(
        timestamps=cols["timestamp"],
        object_ids=codes,
        sizes=cols["size"],
        models=models,
        id_labels=labels,
        bad_lines=bad.count,
        bad_examples=list(bad.examples),
        n_lines=bad.lines,
        meta={"format": fmt, "path": str(path), **({"source": _parquet_meta(path)} if fmt == "parquet" else {})},
    )


def _schema(with_model: bool, meta: dict) -> pa.Schema:
    fields = [("timestamp", pa.float64()), ("object_id", pa.int64()), ("size", pa.int64())]
    if with_model:
        fields.append(("model", pa.string()))
    md = {"version": _FORMAT_VERSION, "dense_ids": True, "default_size": DEFAULT_OBJECT_SIZE, **meta}
    return pa.schema(fields, metadata={_META_KEY: json.dumps(md, default=str).encode()})


def write_trace(trace: Trace, path: str | os.PathLike, *, row_group_size: int = 1_000_000) -> Path:
    """Write ``trace`` as Parquet (``.parquet`` / ``.pq``) or CSV (``.csv``; dense codes as ids).

    Returns the path written. Parquet files carry the format version, ``dense_ids`` and ``trace.meta`` under the
    ``latentzarr.trace`` metadata key, so :func:`read_trace` can skip re-coding ids.
    """
    p = Path(path)
    n = len(trace)
    if p.suffix.lower() == ".csv":
        with open(p, "w", encoding="utf-8", newline="\n") as f:
            header = "timestamp,object_id,size" + (",model" if trace.models is not None else "")
            f.write(header + "\n")
            for lo in range(0, n, row_group_size):
                sl = slice(lo, lo + row_group_size)
                df = pd.DataFrame(
                    {"timestamp": trace.timestamps[sl], "object_id": trace.object_ids[sl], "size": trace.sizes[sl]}
                )
                if trace.models is not None:
                    df["model"] = trace.models[sl]
                df.to_csv(f, header=False, index=False, float_format="%.17g", lineterminator="\n")
        return p
    if p.suffix.lower() not in (".parquet", ".pq"):
        raise ValueError(f"Expected a path ending in .parquet, .pq or .csv. Got {str(path)!r} instead.")
    schema = _schema(trace.models is not None, {"meta": trace.meta})
    with pq.ParquetWriter(p, schema) as writer:
        for lo in range(0, max(n, 1), row_group_size):
            sl = slice(lo, lo + row_group_size)
            arrays = [pa.array(trace.timestamps[sl]), pa.array(trace.object_ids[sl]), pa.array(trace.sizes[sl])]
            if trace.models is not None:
                arrays.append(pa.array(trace.models[sl], type=pa.string()))
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema), row_group_size=row_group_size)
    return p


def convert_trace(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    format: str = "auto",
    *,
    max_bad_fraction: float = 0.01,
    default_size: int = DEFAULT_OBJECT_SIZE,
    tencent_key: str = "rendition",
    chunk_lines: int = 1_000_000,
) -> dict:
    """Stream a text trace into a Parquet trace file with dense ids, chunk by chunk (bounded memory).

    Only the id dictionary grows with the input. Returns ``{"requests", "bad_lines", "bad_examples", "lines",
    "format"}``. Raises :class:`~latentzarr.errors.TraceFormatError` as :func:`read_trace` does (after writing;
    the partial output is removed).
    """
    fmt = _check_format(format, src)
    max_bad_fraction = _check_fraction(max_bad_fraction)
    if fmt == "parquet":
        trace = read_trace(src, "parquet", max_bad_fraction=max_bad_fraction, default_size=default_size)
        write_trace(trace, dst)
        return {
            "requests": len(trace),
            "bad_lines": trace.bad_lines,
            "bad_examples": trace.bad_examples,
            "lines": trace.n_lines,
            "format": fmt,
        }
    reader = _TextChunks(src, fmt, chunk_lines=chunk_lines, default_size=default_size, tencent_key=tencent_key)
    coder = _Coder()
    writer = None
    n = 0
    try:
        for chunk in reader:
            if writer is None:
                schema = _schema(reader.has_model, {"meta": {"format": fmt, "path": str(src)}})
                writer = pq.ParquetWriter(dst, schema)
            arrays = [
                pa.array(chunk["timestamp"].to_numpy()),
                pa.array(coder.encode(chunk["label"].to_numpy())),
                pa.array(chunk["size"].to_numpy()),
            ]
            if reader.has_model:
                arrays.append(pa.array(chunk["model"].to_numpy(), type=pa.string()))
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            n += len(chunk)
        if writer is not None:
            writer.close()
            writer = None
        reader.bad.check(src, fmt, max_bad_fraction)
    except BaseException:
        if writer is not None:
            writer.close()
        Path(dst).unlink(missing_ok=True)
        raise
    return {
        "requests": n,
        "bad_lines": reader.bad.count,
        "bad_examples": reader.bad.examples,
        "lines": reader.bad.lines,
        "format": fmt,
    }
