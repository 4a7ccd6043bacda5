"""Precision modes (lossless, bitround, q, step, wstep), the latentzarr.lossy codec and the fidelity evaluator."""

from __future__ import annotations

import io
import json
import math

import ml_dtypes
import numcodecs
import numpy as np
import pandas as pd
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from latentzarr_codecs import CorruptChunkError, LossyCodec, LossyPCodec
from latentzarr_codecs.lossy import error_bound
from PIL import Image

from latentzarr.precision import (
    FidelityResult,
    PrecisionMode,
    best_reduction,
    channel_sensitivity,
    decode_latents,
    encode_latents,
    equal_bytes_gain,
    evaluate_fidelity,
    parse_mode,
    plot_rate_distortion,
    roundtrip,
)
from latentzarr.precision.imagecodecs import available_codecs, match_quality

BF16 = np.dtype(ml_dtypes.bfloat16)


# ------------------------------------------------------------------------------------------------ modes as text
@pytest.mark.parametrize(
    ("text", "name", "lossy"),
    [
        ("lossless", "lossless", False),
        (" LOSSLESS ", "lossless", False),
        ("bitround:7", "bitround:7", True),
        ("q8", "q8", True),
        ("Q10", "q10", True),
        ("step:0.04", "step:0.04", True),
        ("step:4e-2", "step:0.04", True),
        ("wstep:0.06", "wstep:0.06", True),
    ],
)
def test_parse_and_print(text: str, name: str, lossy: bool) -> None:
    mode = parse_mode(text)
    assert mode.name == name == str(mode)
    assert mode.lossy is lossy
    assert parse_mode(mode.name) == mode
    assert parse_mode(mode) is mode


@pytest.mark.parametrize(
    "text",
    ["", "lossy", "q", "q0", "q17", "q8x", "bitround", "bitround:", "bitround:-1", "bitround:24", "step:0",
     "step:-0.1", "step:nan", "step:inf", "step:abc", "wstep:", "8", None, 8],
)  # fmt: skip
def test_bad_mode_text_raises_clear_error(text: object) -> None:
    with pytest.raises(ValueError, match=r"Expected (a precision mode|a positive finite step|q bits|bitround bits)"):
        parse_mode(text)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["lossless", "bitround:3", "q8", "step:0.125", "wstep:0.05"])
def test_config_round_trips_through_json(text: str) -> None:
    mode = parse_mode(text)
    if text.startswith("wstep"):
        mode = mode.with_sensitivity([1.0, 4.0, 0.25])
    config = json.loads(json.dumps(mode.to_config()))
    assert config["lossy"] is mode.lossy
    assert PrecisionMode.from_config(config) == mode


@pytest.mark.parametrize(
    "config",
    [{"mode": "q8", "extra": 1}, {"mode": "q8", "version": 2}, {"mode": "q8", "lossy": False}, {"mode": "q99"}, []],
)
def test_bad_config_raises(config: object) -> None:
    with pytest.raises(ValueError, match="Expected"):
        PrecisionMode.from_config(config)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["lossless", "bitround:5", "q8", "step:0.04", "wstep:0.05"])
def test_mode_read_back_from_serializer_metadata(text: str) -> None:
    mode = parse_mode(text)
    if not mode.resolved:
        mode = mode.with_sensitivity([1.0, 2.0])
    back = PrecisionMode.from_serializer(mode.zarr_serializer(dtype="float16").to_dict())
    assert (back.kind, back.bits, back.steps, back.lossy) == (mode.kind, mode.bits, mode.steps, mode.lossy)
    assert back.step == pytest.approx(mode.step) if mode.step else back.step is None
    with pytest.raises(ValueError, match="not an array written by latentzarr"):
        PrecisionMode.from_serializer({"name": "bytes", "configuration": {}})


def test_wstep_steps_follow_sensitivity() -> None:
    mode = parse_mode("wstep:0.04")
    assert not mode.resolved
    with pytest.raises(ValueError, match="resolve_mode"):
        encode_latents(np.zeros((1, 3, 4, 4), np.float32), mode)
    steps = mode.with_sensitivity([1.0, 4.0, 0.25]).steps
    assert steps is not None
    assert math.exp(np.mean(np.log(steps))) == pytest.approx(0.04)  # geometric mean is D
    assert steps[1] < steps[0] < steps[2]  # finer steps where the decoder is more sensitive
    assert steps[0] / steps[1] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="sensitivities"):
        mode.with_sensitivity([1.0, 0.0])


# ------------------------------------------------------------------------------------------------ storage
@pytest.mark.parametrize("dtype", [np.float16, np.float32, BF16])
def test_lossless_round_trip_is_bit_exact(taef2_latents: np.ndarray, dtype: np.dtype) -> None:
    latents = taef2_latents[:2].astype(dtype)
    encoded = encode_latents(latents, "lossless")
    decoded = decode_latents(encoded)
    assert decoded.dtype == latents.dtype
    assert decoded.tobytes() == latents.tobytes()
    assert encoded.nbytes.shape == (2,) and encoded.bytes_per_image == encoded.nbytes.mean() > 0


def test_lossy_modes_shrink_real_latents_within_bounds(taef2_latents: np.ndarray) -> None:
    latents = taef2_latents[:2].astype(np.float16)
    x = latents.astype(np.float64)
    lossless = encode_latents(latents, "lossless").bytes_per_image
    sizes = {}
    for text in ("q10", "q8", "q6", "step:0.04", "bitround:4"):
        values, nbytes = roundtrip(latents, text)
        sizes[text] = nbytes.mean()
        err = np.abs(values.astype(np.float64) - x)
        if text.startswith("q"):
            bits = int(text[1:])
            span = x.max(axis=(2, 3), keepdims=True) - x.min(axis=(2, 3), keepdims=True)
            assert (err <= span / (2**bits - 1) / 2 * (1 + 1e-6) + np.abs(x) * 2**-23).all()
        elif text.startswith("step"):
            assert err.max() <= 0.02 * (1 + 1e-6)
        else:
            assert values.dtype == np.float16
            assert (err <= np.abs(x) * 2**-5 + 2**-19).all()
    assert lossless > sizes["q10"] > sizes["q8"] > sizes["q6"]


@st.composite
def float_chunks(draw: st.DrawFn) -> tuple[np.ndarray, str]:
    name = draw(st.sampled_from(["float16", "float32", "bfloat16"]))
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=9))
    scale = draw(st.sampled_from([1e-3, 1.0, 30.0]))
    values = draw(hnp.arrays(np.float64, shape, elements=st.floats(-1, 1, allow_subnormal=False))) * scale
    dtype = BF16 if name == "bfloat16" else np.dtype(name)
    return values.astype(dtype), name


def _independent_bound(x: np.ndarray, scheme: str, param: object) -> np.ndarray:
    """The documented bound, written out again here (not taken from the code under test)."""
    if scheme == "bitround":
        return np.abs(x) * 2.0 ** -(int(param) + 1) + 2.0**-150 + (np.abs(x) < 2**-14) * 2.0 ** (-14 - int(param) - 1)
    planes = x.reshape(-1, x.shape[-2] * x.shape[-1])
    if scheme == "affine":
        per_plane = (planes.max(axis=1) - planes.min(axis=1)) / (2 ** int(param) - 1) / 2 * (1 + 2**-20)
    else:
        per_plane = np.full(len(planes), float(param) / 2)
    return np.repeat(per_plane, planes.shape[1]).reshape(x.shape)


@settings(max_examples=120, deadline=None)
@given(
    case=float_chunks(),
    choice=st.sampled_from([("bitround", 0), ("bitround", 3), ("bitround", 7), ("affine", 1), ("affine", 8),
                            ("affine", 16), ("step", 0.01), ("step", 0.5)]),
)  # fmt: skip
def test_lossy_error_within_documented_bound(case: tuple[np.ndarray, str], choice: tuple[str, object]) -> None:
    array, _ = case
    scheme, param = choice
    key = {"bitround": "keepbits", "affine": "bits", "step": "steps"}[scheme]
    codec = LossyPCodec(scheme, **{key: param})
    out = np.empty(array.shape, np.float64)
    codec.decode(codec.encode(array), out=out)
    x = array.astype(np.float64)
    err = np.abs(out - x)
    slack = 1e-12 * (np.abs(x) + 1)
    assert (err <= _independent_bound(x, scheme, param) + slack).all()
    assert (err <= error_bound(array, scheme, **{key: param}) + slack).all()
    default = codec.decode(codec.encode(array))  # without out: the value dtype itself
    assert default.dtype == array.dtype and default.size == array.size


def test_edge_cases_overflow_and_wide_codes() -> None:
    big = np.array([[65504.0, -65504.0], [1.0, 0.0]], np.float16)  # rounding 65504 to 3 bits would give inf
    out = LossyPCodec("bitround", keepbits=3).decode(LossyPCodec("bitround", keepbits=3).encode(big))
    assert np.isfinite(out).all() and out[0] == 61440 and out[1] == -61440
    wide = np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8)  # 2e6 codes per plane: stored as uint32
    codec = LossyPCodec("step", steps=1e-6)
    back = np.empty(wide.shape, np.float64)
    codec.decode(codec.encode(wide), out=back)
    assert np.abs(back - wide).max() <= 0.5e-6 * (1 + 1e-9)
    with pytest.raises(ValueError, match="larger step"):
        LossyPCodec("step", steps=1e-12).encode(wide)


def test_bitround_refuses_more_bits_than_the_dtype_has() -> None:
    with pytest.raises(ValueError, match="keepbits <= 7"):
        LossyPCodec("bitround", keepbits=8).encode(np.ones((2, 2), BF16))
    with pytest.raises(ValueError, match="finite"):
        LossyPCodec("affine", bits=8).encode(np.array([[1.0, np.nan]], np.float32))
    with pytest.raises(TypeError, match="float"):
        LossyPCodec("affine", bits=8).encode(np.ones((2, 2), np.uint32))


def test_lossy_zarr_array_on_disk_says_lossy(tmp_path, taef2_latents: np.ndarray) -> None:
    latents = taef2_latents[:2]
    mode = parse_mode("q8")
    path = tmp_path / "lossy.zarr"
    arr = zarr.create_array(
        str(path), shape=latents.shape, chunks=(1, *latents.shape[1:]), dtype="float32",
        serializer=mode.zarr_serializer(), compressors=None,
    )  # fmt: skip
    arr[:] = latents
    reopened = zarr.open_array(str(path), mode="r")
    codecs = reopened.metadata.to_dict()["codecs"]
    assert [c["name"] for c in codecs] == ["latentzarr.lossy"]
    assert codecs[0]["configuration"]["scheme"] == "affine"
    expected, _ = roundtrip(latents, mode)
    np.testing.assert_array_equal(reopened[:], expected)
    assert LossyCodec.from_dict(codecs[0]) == mode.zarr_serializer(dtype="float32")
    assert numcodecs.get_codec(mode.numcodecs_codec().get_config()) == mode.numcodecs_codec()


def test_corrupt_lossy_chunk_is_reported() -> None:
    data = bytearray(LossyPCodec("affine", bits=8).encode(np.linspace(0, 1, 64, dtype=np.float32).reshape(1, 8, 8)))
    data[24] ^= 0xFF  # a parameter byte
    with pytest.raises(CorruptChunkError):
        LossyPCodec("affine", bits=8).decode(bytes(data))
    with pytest.raises(CorruptChunkError, match="magic"):
        LossyPCodec("affine", bits=8).decode(b"XX" + bytes(data[2:]))


def test_match_quality_finds_nearest_size() -> None:
    calls: list[int] = []

    def size_of(q: int) -> int:
        calls.append(q)
        return 100 * q

    assert match_quality(size_of, 4_240) == 42
    assert match_quality(size_of, 4_260) == 43
    assert match_quality(size_of, 1e9) == 100 and match_quality(size_of, 0) == 1
    assert len(calls) < 30


# ------------------------------------------------------------------------------------------------ model-backed
def test_channel_sensitivity_is_positive_per_channel(taef2, taef2_latents: np.ndarray) -> None:
    gains = channel_sensitivity(taef2, taef2_latents[:1], max_side=4)
    assert gains.shape == (taef2.latent_channels,)
    assert (gains > 0).all() and np.isfinite(gains).all()
    assert gains.max() > 2 * gains.min()  # channels differ (the point of wstep)


@pytest.fixture(scope="module")
def small_result(taef2):
    from latentzarr.samples import sample_images

    pictures = sample_images(64, names=["astronaut", "coffee"])
    sources = np.stack(list(pictures.values()))
    latents = taef2.encode(sources, dtype=np.float16)
    return evaluate_fidelity(
        latents, taef2, ["lossless", "q8", "q6", "q4"], ["jpeg", "webp", "jxl"], qualities=(50, 90),
        match_bytes=["q8"], names=list(pictures), sources=sources,
    )  # fmt: skip


def test_fidelity_evaluator_gives_sane_figures(small_result) -> None:
    summary = small_result.summary.set_index(["method", "setting"])
    lossless = summary.loc[("latent", "lossless")]
    assert math.isinf(lossless["psnr_mean"]) and lossless["ssim_min"] == 1.0
    psnrs = [summary.loc[("latent", m), "psnr_mean"] for m in ("q8", "q6", "q4")]
    assert psnrs[0] > psnrs[1] > psnrs[2] > 20
    sizes = [summary.loc[("latent", m), "bytes_mean"] for m in ("lossless", "q8", "q6", "q4")]
    assert sizes == sorted(sizes, reverse=True)
    assert (summary["ssim_min"] <= 1).all() and (summary["ssim_min"] > 0).all()
    per = small_result.per_image
    assert len(per[(per.method == "latent")]) == 8  # 4 modes x 2 images
    matched = per[(per.method == "webp") & (per.setting == "@q8")].set_index("image")["bytes"]
    latent = per[(per.method == "latent") & (per.setting == "q8")].set_index("image")["bytes"]
    assert ((matched - latent).abs() / latent < 0.5).all()  # nearest achievable quality, not exact
    info = small_result.info
    assert info["images"] == 2 and info["picture_shape"] == [64, 64, 3]
    assert info["png_bytes_per_image"] > 0 and info["source_png_bytes_per_image"] > 0
    if available_codecs()["jxl"] is not None:
        assert info["unavailable"]["jxl"].startswith("not available")
        assert "not available" in small_result.table()
    assert "| latent | q8 |" in small_result.table()


def test_fidelity_result_json_and_bar_helpers(small_result) -> None:
    data = json.loads(small_result.to_json())
    rows = {(r["method"], r["setting"]): r for r in data["summary"]}
    assert rows[("latent", "lossless")]["psnr_mean"] is None  # infinite: identical decodes
    back = FidelityResult.from_json(small_result.to_json())
    pd.testing.assert_frame_equal(back.summary, small_result.summary, check_dtype=False)
    assert back.info == json.loads(json.dumps(small_result.info))
    gain = equal_bytes_gain(small_result, "q8", "webp")
    assert gain["gain_db"] == pytest.approx(gain["latent_psnr_mean"] - gain["codec_psnr_mean"])
    assert "matched_gain_db" in gain
    best = best_reduction(small_result, min_psnr=0.0)
    assert best is not None and best["mode"] == "q4"  # the smallest lossy mode passes a 0 dB floor
    assert best_reduction(small_result, min_psnr=1000.0) is None
    with pytest.raises(ValueError, match="Expected"):
        equal_bytes_gain(small_result, "q3", "webp")


def test_rate_distortion_plot_is_written(small_result, tmp_path) -> None:
    path = tmp_path / "rd.png"
    plot_rate_distortion(small_result, str(path))
    with Image.open(io.BytesIO(path.read_bytes())) as im:
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.shape[0] > 200 and pixels.shape[1] > 200
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # curves, labels, not a blank canvas
    assert (pixels < 250).any(axis=-1).mean() > 0.01


def test_workflow_runs_small(capsys, models_dir) -> None:
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("fidelity_wf", Path(__file__).parents[1] / "workflows/fidelity.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = ["--sizes", "64", "--images", "2", "--modes", "lossless,q8", "--codecs", "jpeg,webp", "--qualities", "50,90"]
    assert module.main(argv) == 0
    out = capsys.readouterr().out
    assert "| latent | q8 |" in out and "bar 2" in out and "bar 1" in out
    assert module.main([*argv[:6], "--codecs", "jpeg", "--match", "none", "--qualities", "90"]) == 0
    assert "vs WebP not evaluated" in capsys.readouterr().out
