"""The fidelity evaluator: what each precision mode costs in pixels, next to lossy image codecs at equal bytes.

For a sample of latents, every precision mode is encoded (bytes per image as a store would keep them), decoded
and compared with the **lossless decode** (the decode of the latents as given, on the same setup and batch size):
PSNR and SSIM (scikit-image; ``data_range=255``, SSIM over the colour channels), per image and summarised
(mean, min, median). The lossless decode is then encoded with lossy image codecs, both at a ladder of qualities
and at the quality (found per image by bisection) whose size is nearest to each lossy latent mode's bytes for that
image, so both sides are compared at equal bytes per image.

PSNR is ``inf`` where the two pictures are identical (written as ``null`` in JSON). Decodes are deterministic only
for a fixed setup (see design.md), so the reference and the modes are decoded with one model, thread count and
batch size.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from latentzarr.precision.imagecodecs import IMAGE_CODECS, CachedEncoder, available_codecs, decode_picture
from latentzarr.precision.imagecodecs import match_quality as _match_quality
from latentzarr.precision.modes import PrecisionMode, parse_mode
from latentzarr.precision.sensitivity import channel_sensitivity
from latentzarr.precision.storage import decode_latents, encode_latents

__all__ = [
    "DEFAULT_MODES",
    "DEFAULT_QUALITIES",
    "FidelityResult",
    "best_reduction",
    "equal_bytes_gain",
    "evaluate_fidelity",
    "plot_rate_distortion",
    "psnr",
    "ssim",
]

DEFAULT_MODES: tuple[str, ...] = (
    "lossless",
    "bitround:5",
    "bitround:3",
    "q10",
    "q8",
    "q7",
    "q6",
    "step:0.04",
    "wstep:0.04",
    "wstep:0.06",
    "wstep:0.08",
)
"""Modes evaluated by default: the lossless reference row and a ladder of each lossy family."""
DEFAULT_QUALITIES: tuple[int, ...] = (50, 75, 85, 90, 95, 98, 100)
"""Image-codec qualities always evaluated (besides the byte-matched ones), to draw their curves."""
LATENT = "latent"
_FAMILIES = ("bitround", "q", "step", "wstep")


def psnr(reference: np.ndarray, picture: np.ndarray) -> float:
    """PSNR in dB of uint8 ``picture`` against ``reference`` (``inf`` when identical), via scikit-image."""
    if np.array_equal(reference, picture):
        return math.inf
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(reference, picture, data_range=255))


def ssim(reference: np.ndarray, picture: np.ndarray) -> float:
    """SSIM of uint8 RGB ``picture`` against ``reference`` (scikit-image, ``data_range=255``, channel axis -1)."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(reference, picture, data_range=255, channel_axis=-1))


@dataclass
class FidelityResult:
    """What :func:`evaluate_fidelity` measured.

    Attributes
    ----------
    per_image
        One row per (method, setting, image): ``method`` (``"latent"`` or an image codec), ``setting`` (the mode
        text, ``"q<quality>"``, or ``"@<mode>"`` for the byte-matched quality), ``image``, ``quality``,
        ``bytes``, ``psnr`` (dB), ``ssim``.
    summary
        One row per (method, setting): ``bytes_mean``, ``bytes_total``, ``psnr_mean``, ``psnr_min``,
        ``psnr_median``, ``ssim_mean``, ``ssim_min``, ``reduction_vs_png`` (1 - bytes_total / PNG total) and
        ``lossy``.
    info
        Sizes, image count, model, optimised PNG bytes per image (of the lossless decode, and of the sources
        when given), and ``unavailable`` (image codec -> reason).
    """

    per_image: pd.DataFrame
    summary: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """JSON text of all three parts (infinite PSNR as ``null``)."""

        def clean(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [
                {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
                for r in records
            ]

        return json.dumps(
            {
                "info": self.info,
                "summary": clean(self.summary.to_dict("records")),
                "per_image": clean(self.per_image.to_dict("records")),
            },
            indent=1,
            default=_json_default,
        )

    @classmethod
    def from_json(cls, text: str) -> FidelityResult:
        """Inverse of :meth:`to_json` (``null`` PSNR back to ``inf``), e.g. to re-plot a saved run."""
        data = json.loads(text)
        frames = []
        for key in ("per_image", "summary"):
            frame = pd.DataFrame(data[key])
            for column in [c for c in frame.columns if c.startswith("psnr")]:
                frame[column] = frame[column].astype(float).fillna(math.inf)
            frames.append(frame)
        return cls(frames[0], frames[1], data["info"])

    def table(self) -> str:
        """The rate-distortion table as Markdown (bytes per image, PSNR mean / min, SSIM mean / min)."""
        lines = [
            "| method | setting | bytes/image | reduction vs PNG | PSNR mean (dB) | PSNR min (dB) "
            "| SSIM mean | SSIM min |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in self.summary.itertuples(index=False):
            lines.append(
                f"| {row.method} | {row.setting} | {row.bytes_mean:,.0f} | {row.reduction_vs_png:.1%} | "
                f"{_db(row.psnr_mean)} | {_db(row.psnr_min)} | {row.ssim_mean:.5f} | {row.ssim_min:.5f} |"
            )
        for name, reason in self.info.get("unavailable", {}).items():
            lines.append(f"| {name} | - | {reason} | | | | | |")
        return "\n".join(lines)


def _db(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.2f}"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if not math.isfinite(value) else float(value)
    raise TypeError(f"Expected JSON-able values. Got {type(value).__name__} instead.")


def evaluate_fidelity(
    latents: np.ndarray,
    model: Any,
    modes: Sequence[str | PrecisionMode] = DEFAULT_MODES,
    image_codecs: Sequence[str] = IMAGE_CODECS,
    *,
    qualities: Sequence[int] = DEFAULT_QUALITIES,
    match_bytes: bool | Sequence[str] = True,
    names: Sequence[str] | None = None,
    sources: np.ndarray | None = None,
    batch_size: int = 1,
    level: int = 9,
    progress: Callable[[str], None] | None = None,
) -> FidelityResult:
    """Measure every precision mode and image codec against the lossless decode of ``latents``.

    Parameters
    ----------
    latents
        (N, C, h, w) stored latents (float16, float32 or bfloat16), e.g. a sample of a store.
    model
        The decoder (:class:`latentzarr.models.LatentAutoencoder`). It also resolves ``wstep`` modes: their
        channel sensitivity is measured once, on the first two latents (a 16 x 16 latent-pixel centre crop).
    modes
        Precision modes (text or :class:`PrecisionMode`); ``lossless`` is the sanity row (PSNR ``inf``).
    image_codecs
        Image codecs among :data:`~latentzarr.precision.imagecodecs.IMAGE_CODECS`; the unavailable ones are
        listed in ``info["unavailable"]`` and skipped.
    qualities
        Qualities evaluated for every image codec.
    match_bytes
        Also evaluate each image codec, per image, at the quality whose size is nearest to each lossy mode's bytes
        (``True``: every lossy mode; or the mode texts to match; ``False``: none).
    names
        Image names (default ``"0"``, ``"1"``, ...).
    sources
        Optional uint8 (N, H, W, 3) source pictures: their optimised PNG size is reported too.
    batch_size
        Decode batch size (the same for every decode, so that equal latents give equal pixels).
    level
        pcodec level of the entropy stage.
    progress
        Called with a short message before each step (e.g. ``print``).
    """
    from latentzarr.ingest import png_size

    say = progress or (lambda message: None)
    arr = np.asarray(latents)
    names = [str(i) for i in range(len(arr))] if names is None else [str(n) for n in names]
    if len(names) != len(arr):
        raise ValueError(f"Expected {len(arr)} names (one per latent). Got {len(names)} instead.")
    say(f"lossless decode of {len(arr)} latents {arr.shape[1:]}")
    reference = model.decode(arr, batch_size=batch_size)
    match_names = set() if isinstance(match_bytes, bool) else {parse_mode(m).name for m in match_bytes}
    rows: list[dict[str, Any]] = []
    latent_bytes: dict[str, np.ndarray] = {}
    sensitivity: np.ndarray | None = None
    for mode in modes:
        resolved = parse_mode(mode)
        if not resolved.resolved:  # measure the decoder's channel sensitivity once for every wstep mode
            if sensitivity is None:
                sensitivity = channel_sensitivity(model, arr[:2], max_side=16)
            resolved = resolved.with_sensitivity(sensitivity)
        say(f"mode {resolved.name}")
        encoded = encode_latents(arr, resolved, level=level)
        pictures = model.decode(decode_latents(encoded), batch_size=batch_size)
        if resolved.lossy:
            latent_bytes[resolved.name] = encoded.nbytes
        for i, name in enumerate(names):
            rows.append(_row(LATENT, resolved.name, name, None, int(encoded.nbytes[i]), reference[i], pictures[i]))
    unavailable = {c: r for c, r in available_codecs().items() if c in image_codecs and r is not None}
    for codec in image_codecs:
        if codec not in IMAGE_CODECS:
            raise ValueError(f"Expected image codecs among {IMAGE_CODECS}. Got {codec!r} instead.")
        if codec in unavailable:
            continue
        say(f"image codec {codec}")
        for i, name in enumerate(names):
            encoded_at = CachedEncoder(reference[i], codec)
            for q in qualities:
                rows.append(_image_row(codec, f"q{q}", name, q, encoded_at(q), reference[i]))
            for mode_name, nbytes in latent_bytes.items():
                if match_bytes is True or (match_bytes and mode_name in match_names):
                    q = _match_quality(encoded_at.size, float(nbytes[i]))
                    rows.append(_image_row(codec, f"@{mode_name}", name, q, encoded_at(q), reference[i]))
    per_image = pd.DataFrame(rows)
    png = np.array([png_size(p) for p in reference], dtype=np.int64)
    info: dict[str, Any] = {
        "model": getattr(model, "name", type(model).__name__),
        "images": len(arr),
        "latent_shape": list(arr.shape[1:]),
        "latent_dtype": np.dtype(arr.dtype).name,
        "picture_shape": list(reference.shape[1:]),
        "batch_size": batch_size,
        "png_bytes_per_image": float(png.mean()),
        "png_bytes": png.tolist(),
        "unavailable": unavailable,
    }
    if sources is not None:
        src = np.array([png_size(np.asarray(p)) for p in sources], dtype=np.int64)
        info["source_png_bytes_per_image"] = float(src.mean())
        info["source_png_bytes"] = src.tolist()
    return FidelityResult(per_image, _summarise(per_image, float(png.sum())), info)


def _row(method: str, setting: str, image: str, quality: int | None, nbytes: int, ref: np.ndarray, pic: np.ndarray):
    return {
        "method": method,
        "setting": setting,
        "image": image,
        "quality": quality,
        "bytes": nbytes,
        "psnr": psnr(ref, pic),
        "ssim": ssim(ref, pic),
    }


def _image_row(codec: str, setting: str, image: str, quality: int, data: bytes, ref: np.ndarray) -> dict[str, Any]:
    return _row(codec, setting, image, quality, len(data), ref, decode_picture(data))


def _summarise(per_image: pd.DataFrame, png_total: float) -> pd.DataFrame:
    groups = per_image.groupby(["method", "setting"], sort=False)
    summary = groups.agg(
        bytes_mean=("bytes", "mean"),
        bytes_total=("bytes", "sum"),
        psnr_mean=("psnr", "mean"),
        psnr_min=("psnr", "min"),
        psnr_median=("psnr", "median"),
        ssim_mean=("ssim", "mean"),
        ssim_min=("ssim", "min"),
    ).reset_index()
    summary["reduction_vs_png"] = 1 - summary["bytes_total"] / png_total
    summary["lossy"] = summary["setting"] != "lossless"
    return summary


# ------------------------------------------------------------------------------------------------ bar checks
def _curve(summary: pd.DataFrame, method: str) -> tuple[np.ndarray, np.ndarray]:
    part = summary[summary["method"] == method].sort_values("bytes_mean")
    return part["bytes_mean"].to_numpy(float), part["psnr_mean"].to_numpy(float)


def equal_bytes_gain(result: FidelityResult, mode: str, codec: str) -> dict[str, Any]:
    """PSNR of latent ``mode`` minus ``codec``'s PSNR at the same mean bytes per image.

    The codec's PSNR there is interpolated (linear in log bytes) on its curve of mean bytes vs mean PSNR over
    every setting evaluated (the quality ladder and the byte-matched qualities). When the latent mode's bytes
    exceed the codec's largest output, the codec's PSNR at its largest output is used (``capped``: the codec
    cannot spend as many bytes). Also gives the direct per-image comparison at the matched qualities
    (``matched_gain_db``: mean over images of the PSNR differences), when it was evaluated.
    """
    summary = result.summary
    row = summary[(summary["method"] == LATENT) & (summary["setting"] == mode)]
    if row.empty:
        raise ValueError(f"Expected a latent mode that was evaluated. Got {mode!r} instead.")
    x, y = _curve(summary, codec)
    if len(x) == 0:
        raise ValueError(f"Expected an image codec that was evaluated. Got {codec!r} instead.")
    target = float(row["bytes_mean"].iloc[0])
    latent_psnr = float(row["psnr_mean"].iloc[0])
    codec_psnr = float(np.interp(math.log(target), np.log(x), y))
    out: dict[str, Any] = {
        "mode": mode,
        "codec": codec,
        "bytes_per_image": target,
        "latent_psnr_mean": latent_psnr,
        "codec_psnr_mean": codec_psnr,
        "gain_db": latent_psnr - codec_psnr,
        "capped": bool(target > x.max()),
        "codec_max_bytes": float(x.max()),
    }
    per = result.per_image
    matched = per[(per["method"] == codec) & (per["setting"] == f"@{mode}")].set_index("image")
    if not matched.empty:
        lat = per[(per["method"] == LATENT) & (per["setting"] == mode)].set_index("image")
        diff = lat["psnr"] - matched["psnr"].reindex(lat.index)
        out["matched_gain_db"] = float(diff.mean())
        out["matched_gain_db_min"] = float(diff.min())
        out["matched_bytes_per_image"] = float(matched["bytes"].mean())
    return out


def best_reduction(result: FidelityResult, min_psnr: float = 50.0, png: str = "decode") -> dict[str, Any] | None:
    """The lossy latent mode with the largest reduction vs optimised PNG whose worst-case PSNR >= ``min_psnr``.

    ``png`` is ``"decode"`` (PNG of the lossless decode: what an image store of the generated pictures holds)
    or ``"source"`` (PNG of the source pictures, when they were given). Returns ``None`` when no mode qualifies.
    """
    key = {"decode": "png_bytes_per_image", "source": "source_png_bytes_per_image"}.get(png)
    if key is None or key not in result.info:
        raise ValueError(f"Expected png to be 'decode' or 'source' (if sources were given). Got {png!r} instead.")
    png_mean = float(result.info[key])
    summary = result.summary
    ok = summary[(summary["method"] == LATENT) & summary["lossy"] & (summary["psnr_min"] >= min_psnr)]
    if ok.empty:
        return None
    best = ok.loc[ok["bytes_mean"].idxmin()]
    return {
        "mode": best["setting"],
        "bytes_per_image": float(best["bytes_mean"]),
        "png_bytes_per_image": png_mean,
        "reduction": 1 - float(best["bytes_mean"]) / png_mean,
        "psnr_min": float(best["psnr_min"]),
        "psnr_mean": float(best["psnr_mean"]),
    }


# ------------------------------------------------------------------------------------------------ plot
def plot_rate_distortion(result: FidelityResult, path: str, title: str | None = None) -> None:
    """Write a PNG: bytes per image (log x) vs mean PSNR, one curve per latent family and per image codec.

    An image codec's curve is its quality ladder; its byte-matched points are crosses. Identical decodes (PSNR
    ``inf``) are left out; the optimised PNG size is a dotted vertical line.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    summary = result.summary[np.isfinite(result.summary["psnr_mean"])]
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    latent = summary[summary["method"] == LATENT].copy()
    latent["family"] = latent["setting"].str.extract(r"^([a-z]+)", expand=False)
    for family, part in latent.groupby("family", sort=False):
        part = part.sort_values("bytes_mean")
        color = f"C{_FAMILIES.index(family)}" if family in _FAMILIES else None
        ax.plot(part["bytes_mean"] / 1000, part["psnr_mean"], "o-", lw=2, color=color, label=f"latent {family}")
        for row in part.itertuples(index=False):
            ax.annotate(
                row.setting,
                (row.bytes_mean / 1000, row.psnr_mean),
                fontsize=6,
                xytext=(3, 3),
                textcoords="offset points",
            )
    for codec in [m for m in summary["method"].unique() if m != LATENT]:
        part = summary[summary["method"] == codec]
        ladder = part[~part["setting"].str.startswith("@")].sort_values("bytes_mean")
        color = f"C{len(_FAMILIES) + IMAGE_CODECS.index(codec)}" if codec in IMAGE_CODECS else None
        (line,) = ax.plot(
            ladder["bytes_mean"] / 1000, ladder["psnr_mean"], "s--", ms=3, lw=1.2, color=color, label=codec
        )
        matched = part[part["setting"].str.startswith("@")]
        ax.plot(matched["bytes_mean"] / 1000, matched["psnr_mean"], "x", ms=4, color=line.get_color())
    ax.axvline(result.info["png_bytes_per_image"] / 1000, color="grey", ls=":", label="optimised PNG")
    ax.set_xscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("bytes per image (KB, log scale)")
    ax.set_ylabel("mean PSNR vs lossless decode (dB)")
    shape = result.info.get("picture_shape", ["?", "?"])
    ax.set_title(title or f"Rate-distortion, {result.info.get('images')} images {shape[0]}x{shape[1]}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
