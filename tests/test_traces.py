"""Trace readers (Parquet, CSV, Tencent photo cache, CDN) and the synthetic trace generator."""

from __future__ import annotations

import calendar
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from latentzarr.errors import LatentZarrError, TraceFormatError
from latentzarr.traces.readers import (
    TraceFormatWarning,
    convert_trace,
    detect_format,
    read_trace,
    write_trace,
)
from latentzarr.traces.synth import SynthParams, synth_trace
from latentzarr.traces.trace import DEFAULT_OBJECT_SIZE, Trace

DATA = Path(__file__).parent / "data"
TENCENT = DATA / "tencent_sample.txt"
CDN = DATA / "cdn_sample.txt"


def _request_lines(path: Path) -> list[tuple[int, list[str]]]:
    """(1-based line number, fields) of every non-empty, non-comment line: an independent reference parser."""
    out = []
    for no, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            out.append((no, line.split()))
    return out


def _dense(labels: list) -> np.ndarray:
    seen: dict = {}
    return np.array([seen.setdefault(x, len(seen)) for x in labels], dtype=np.int64)


def _is_hex(s: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in s) and len(s) > 0


# ------------------------------------------------------------------------------------------------ readers
def test_tencent_sample_good_and_bad_lines():
    ref_good, ref_bad = [], []
    for no, f in _request_lines(TENCENT):
        ok = len(f) >= 5 and _is_hex(f[1]) and f[0].isdigit() and f[4].isdigit()
        (ref_good if ok else ref_bad).append((no, f))
    assert len(ref_bad) == 3 and len(ref_good) == 40  # the sample's malformed lines are the ones we planted

    with pytest.warns(TraceFormatWarning, match=r"3 of 43 lines") as rec:
        tr = read_trace(TENCENT, max_bad_fraction=0.1)
    msg = str(rec[0].message)
    for no, f in ref_bad:
        assert f"line {no}: " in msg and " ".join(f) in msg
    assert tr.bad_lines == 3 and tr.n_lines == 43 and len(tr) == 40
    assert [no for no, _ in tr.bad_examples] == [no for no, _ in ref_bad]

    expect_ts = [calendar.timegm(time.strptime(f[0], "%Y%m%d%H%M%S")) for _, f in ref_good]
    np.testing.assert_array_equal(tr.timestamps, np.array(expect_ts, dtype=float))
    np.testing.assert_array_equal(tr.sizes, [int(f[4]) for _, f in ref_good])
    labels = [f"{f[1]}:{f[2]}:{f[3]}" for _, f in ref_good]
    np.testing.assert_array_equal(tr.object_ids, _dense(labels))
    assert list(tr.id_labels[tr.object_ids]) == labels


def test_tencent_photo_key_merges_renditions():
    with pytest.warns(TraceFormatWarning):
        by_photo = read_trace(TENCENT, "tencent", max_bad_fraction=0.1, tencent_key="photo")
    photos = [f[1] for _, f in _request_lines(TENCENT) if len(f) >= 5 and _is_hex(f[1]) and f[0].isdigit()]
    np.testing.assert_array_equal(by_photo.object_ids, _dense(photos))
    with pytest.raises(ValueError, match="tencent_key"):
        read_trace(TENCENT, "tencent", tencent_key="size")


def test_cdn_sample_good_and_bad_lines():
    good, bad = [], []
    for no, f in _request_lines(CDN):
        try:
            ok = len(f) >= 3 and int(f[2]) >= 0
            float(f[0])
        except ValueError:
            ok = False
        (good if ok else bad).append((no, f))
    with pytest.warns(TraceFormatWarning, match="3 of 43"):
        tr = read_trace(CDN, max_bad_fraction=0.1)
    assert tr.bad_lines == len(bad) == 3
    assert [no for no, _ in tr.bad_examples] == [no for no, _ in bad]
    np.testing.assert_array_equal(tr.timestamps, [float(f[0]) for _, f in good])
    np.testing.assert_array_equal(tr.sizes, [int(f[2]) for _, f in good])
    np.testing.assert_array_equal(tr.object_ids, _dense([f[1] for _, f in good]))


@pytest.mark.parametrize("path", [TENCENT, CDN])
def test_too_many_bad_lines_raise_and_quote(path):
    with pytest.raises(TraceFormatError, match=r"at most 5\.00% malformed") as exc:
        read_trace(path, max_bad_fraction=0.05)
    assert isinstance(exc.value, ValueError) and isinstance(exc.value, LatentZarrError)
    first_bad_no = read_trace_quiet(path).bad_examples[0][0]
    assert f"line {first_bad_no}:" in str(exc.value)


def read_trace_quiet(path: Path) -> Trace:
    with pytest.warns(TraceFormatWarning):
        return read_trace(path, max_bad_fraction=1.0)


def test_clean_file_does_not_warn(tmp_path):
    p = tmp_path / "clean.tr"
    p.write_text("1 a 10\n2 b 20\n\n3 a 10\n")
    tr = read_trace(p, "cdn", max_bad_fraction=0.0)  # filterwarnings=error: any warning would fail here
    assert tr.bad_lines == 0 and list(tr.object_ids) == [0, 1, 0] and tr.n_objects == 2


def test_empty_and_invalid_arguments(tmp_path):
    p = tmp_path / "empty.tr"
    p.write_text("# only a comment\n\n")
    with pytest.raises(TraceFormatError, match="empty trace"):
        read_trace(p, "cdn")
    with pytest.raises(ValueError, match="max_bad_fraction"):
        read_trace(CDN, max_bad_fraction=1.5)
    with pytest.raises(ValueError, match="format"):
        read_trace(CDN, format="jsonl")


def test_detect_format(tmp_path):
    assert detect_format(TENCENT) == "tencent"
    assert detect_format(CDN) == "cdn"
    assert detect_format(tmp_path / "x.parquet") == "parquet"
    assert detect_format(tmp_path / "x.CSV") == "csv"


def test_csv_header_aliases_iso_times_and_bad_rows(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text(
        "ts,id,size,model\n"
        "2024-01-01T00:00:00Z,img-1,100,sd3\n"
        "2024-01-01T00:00:10Z,img-2,200,flux\n"
        "1704067230,img-1,100,sd3\n"
        "1704067240,img-3,300,sd3,extra\n"  # too many fields
        "1704067250,img-4\n"  # too few
        "notatime,img-5,5,sd3\n"
    )
    with pytest.warns(TraceFormatWarning, match="3 of 6"):
        tr = read_trace(p, max_bad_fraction=0.5)
    np.testing.assert_array_equal(tr.timestamps, [1704067200.0, 1704067210.0, 1704067230.0])
    assert list(tr.object_ids) == [0, 1, 0] and list(tr.sizes) == [100, 200, 100]
    assert list(tr.models) == ["sd3", "flux", "sd3"] and list(tr.id_labels) == ["img-1", "img-2"]
    q = tmp_path / "bad_header.csv"
    q.write_text("when,what\n1,2\n")
    with pytest.raises(TraceFormatError, match="header"):
        read_trace(q)


def test_csv_without_size_gets_default(tmp_path):
    p = tmp_path / "nosize.csv"
    p.write_text("timestamp,object_id\n0.5,a\n1.5,b\n")
    tr = read_trace(p)
    assert list(tr.sizes) == [DEFAULT_OBJECT_SIZE] * 2
    assert list(read_trace(p, default_size=7).sizes) == [7, 7]


def test_parquet_and_csv_round_trip(tmp_path):
    tr = synth_trace(5000, seed=3, models=["sd3.5", "flux.1"])
    for name in ("t.parquet", "t.csv"):
        back = read_trace(write_trace(tr, tmp_path / name))
        np.testing.assert_array_equal(back.timestamps, tr.timestamps)
        np.testing.assert_array_equal(back.sizes, tr.sizes)
        assert list(back.models) == list(tr.models)
        # CSV ids are re-coded by first appearance; synthetic codes are in birth order = first appearance
        np.testing.assert_array_equal(back.object_ids, tr.object_ids)
        assert back.bad_lines == 0
    meta = read_trace(tmp_path / "t.parquet").meta["source"]
    assert meta["dense_ids"] is True and meta["meta"]["params"]["tail_alpha"] == SynthParams().tail_alpha
    with pytest.raises(ValueError, match=r"\.parquet"):
        write_trace(tr, tmp_path / "t.txt")


def test_foreign_parquet_string_ids_nulls_and_no_size(tmp_path):
    p = tmp_path / "foreign.parquet"
    table = pa.table({"time": [3.0, 1.0, None, 2.0], "object_id": ["x", "y", "z", "x"]})
    pq.write_table(table, p)
    with pytest.warns(TraceFormatWarning, match="1 of 4"):
        tr = read_trace(p, max_bad_fraction=0.5)
    assert list(tr.object_ids) == [0, 1, 0] and list(tr.id_labels) == ["x", "y"]
    assert list(tr.sizes) == [DEFAULT_OBJECT_SIZE] * 3 and not tr.is_sorted
    assert tr.bad_examples[0][0] == 3


def test_convert_trace_streams_in_chunks(tmp_path):
    out = tmp_path / "cdn.parquet"
    with pytest.warns(TraceFormatWarning):
        info = convert_trace(CDN, out, max_bad_fraction=0.1, chunk_lines=7)
    with pytest.warns(TraceFormatWarning):
        direct = read_trace(CDN, max_bad_fraction=0.1)
    assert info["requests"] == len(direct) and info["bad_lines"] == 3
    back = read_trace(out)
    np.testing.assert_array_equal(back.object_ids, direct.object_ids)
    np.testing.assert_array_equal(back.timestamps, direct.timestamps)
    with pytest.raises(TraceFormatError):
        convert_trace(CDN, tmp_path / "fail.parquet", max_bad_fraction=0.0)
    assert not (tmp_path / "fail.parquet").exists()


# ------------------------------------------------------------------------------------------------ synthetic
def test_synth_shape_and_determinism():
    a = synth_trace(20_000, seed=11)
    b = synth_trace(20_000, seed=11)
    c = synth_trace(20_000, seed=12)
    assert len(a) == 20_000 and a.is_sorted and a.bad_lines == 0
    np.testing.assert_array_equal(a.object_ids, b.object_ids)
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    assert not np.array_equal(a.timestamps, c.timestamps)
    span = SynthParams().days * 86400
    assert a.timestamps.min() >= 0 and a.timestamps.max() < span
    counts = np.bincount(a.object_ids)
    assert counts.min() >= 1  # dense codes
    first = pd.Series(a.timestamps).groupby(a.object_ids).min().to_numpy()
    assert np.all(np.diff(first) >= 0)  # codes in birth order
    sizes = pd.Series(a.sizes).groupby(a.object_ids).nunique()
    assert (sizes == 1).all() and a.models is None


@pytest.mark.parametrize("n", [1, 2, 7, 37, 1000])
def test_synth_exact_request_count_small(n):
    tr = synth_trace(n, seed=1)
    assert len(tr) == n and tr.n_objects == len(np.unique(tr.object_ids))


def test_synth_growing_catalogue():
    tr = synth_trace(200_000, seed=2)
    first = pd.Series(tr.timestamps).groupby(tr.object_ids).min().to_numpy() / 86400
    days = SynthParams().days
    month = days / 35
    last_month = (first >= days - month).sum()
    mean_month = len(first) / 35
    # growth=0.75 makes the end birth rate 0.75 e^0.75 / (e^0.75 - 1) = 1.42x the mean (paper: 3.76 M vs 2.64 M)
    assert 1.30 < last_month / mean_month < 1.55
    flat = synth_trace(200_000, seed=2, growth=0.0)
    first = pd.Series(flat.timestamps).groupby(flat.object_ids).min().to_numpy() / 86400
    assert 0.85 < (first >= days - month).sum() / (len(first) / 35) < 1.15


def test_synth_parameters_are_validated():
    with pytest.raises(ValueError, match="p_once"):
        SynthParams(p_once=1.5)
    with pytest.raises(TypeError, match="zipf"):
        synth_trace(10, zipf=1.0)
    with pytest.raises(ValueError, match="n_requests"):
        synth_trace(0)


def test_synth_models_and_sizes():
    tr = synth_trace(5000, seed=4, models=["a", "b", "c"], size_sigma=0.0, size_median=1000)
    assert set(tr.models) == {"a", "b", "c"} and set(tr.sizes) == {1000}
    per_obj = pd.Series(tr.models).groupby(tr.object_ids).nunique()
    assert (per_obj == 1).all()


def test_synth_defaults_meet_the_3pp_bar_at_1m():
    # The bar is 3 pp at 10M requests (BENCHMARKS.md); the process is the same per object at any length, and 1M
    # requests (~49k objects, top 1% = ~490 objects) already hold every figure well inside it. Measured here with
    # plain pandas, independently of latentzarr.traces.analysis.
    tr = synth_trace(1_000_000, seed=7)
    df = pd.DataFrame({"t": tr.timestamps, "o": tr.object_ids})
    views = df.groupby("o").size().sort_values(ascending=False).to_numpy()
    n = len(views)
    gaps = df.sort_values(["o", "t"]).groupby("o")["t"].diff().dropna().to_numpy()
    measured = {
        "top1_share": views[: round(0.01 * n)].sum() / len(df),
        "top10_share": views[: round(0.1 * n)].sum() / len(df),
        "under10_fraction": (views < 10).mean(),
        "once_fraction": (views == 1).mean(),
        "reaccess_within_1h": (gaps <= 3600).mean(),
        "reaccess_within_1d": (gaps <= 86400).mean(),
        "reaccess_beyond_30d": (gaps > 30 * 86400).mean(),
    }
    published = {
        "top1_share": 0.39,
        "top10_share": 0.71,
        "under10_fraction": 0.69,
        "once_fraction": 0.15,
        "reaccess_within_1h": 0.38,
        "reaccess_within_1d": 0.68,
        "reaccess_beyond_30d": 0.06,
    }
    for key, value in published.items():
        assert abs(measured[key] - value) <= 0.03, (key, measured[key], value)
