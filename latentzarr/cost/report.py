"""The cost-model report shared by ``workflows/cost_model.py`` and ``latentzarr cost``: JSON document and tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from latentzarr.cost.model import (
    OPTIMISTIC_DECLINES,
    PUBLISHED,
    PUBLISHED_SOURCES,
    CostInputs,
    Gpu,
    cost_series,
    headline_ratios,
    months_until,
    paper_comparison,
    sensitivity,
)

__all__ = ["MEASURED_DEFAULTS", "build_report", "dump", "format_report", "measured_inputs", "parse_gpu",
           "parse_setting", "run", "write_plot"]

#: Figures measured in this project, used by the "our measured" variant when nothing else is given.
MEASURED_DEFAULTS: dict[str, dict[str, Any]] = {
    "latent_to_image_bytes": {
        "value": 0.58,
        "source": "design.md, measured here: taef2 float16 latents of 8 real photos at 512x512, pcodec, are 42% "
                  "smaller than optimised PNG (bfloat16: 55%)",
    },
    "decode_trigger_rate": {
        "value": 0.415,
        "source": "BENCHMARKS.md 'Cache simulator': adaptive cache at 1% of the working set, 10 M-request synthetic "
                  "trace: 58.5% image hits -> 41.5% of reads decode",
    },
}


_OPTIONAL = ("views_per_image_per_year", "working_set_cagr")  # fields that take None


def parse_setting(text: str) -> tuple[str, Any]:
    """``"storage_usd_per_gb_month=0.02"`` -> ``("storage_usd_per_gb_month", 0.02)`` (ints stay ints).

    ``none`` turns off ``views_per_image_per_year`` (flat reads) or ``working_set_cagr`` (steady bytes per image).
    """
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"Expected FIELD=VALUE, e.g. storage_usd_per_gb_month=0.02. Got {text!r} instead.")
    name = name.strip()
    if name == "gpus" or name not in CostInputs.__dataclass_fields__:
        raise ValueError(f"Expected a CostInputs field (see `CostInputs` docs; use --gpu for GPUs). Got {name!r} "
                         "instead.")
    if value.strip().lower() == "none":
        if name not in _OPTIONAL:
            raise ValueError(f"Expected a number for {name} (only {', '.join(_OPTIONAL)} take 'none'). Got "
                             f"{value!r} instead.")
        return name, None
    try:
        number: Any = int(value) if name in ("trace_months", "archive_after_months") else float(value)
    except ValueError:
        raise ValueError(f"Expected a number for {name}. Got {value!r} instead.") from None
    return name, number


def parse_gpu(text: str) -> Gpu:
    """``"RTX 4090:0.34:67"`` -> ``Gpu("RTX 4090", 0.34, 67.0)`` (name, $/hour, decode ms)."""
    parts = text.rsplit(":", 2)
    if len(parts) != 3:
        raise ValueError(f"Expected NAME:USD_PER_HOUR:DECODE_MS, e.g. 'RTX 4090:0.34:67'. Got {text!r} instead.")
    try:
        return Gpu(parts[0].strip(), float(parts[1]), float(parts[2]))
    except ValueError as exc:
        if "Expected" in str(exc):
            raise
        raise ValueError(f"Expected numbers for $/hour and decode ms in {text!r}.") from None


def measured_inputs(
    base: CostInputs,
    *,
    store_info: dict[str, Any] | None = None,
    sim_doc: dict[str, Any] | None = None,
    sim_config: str = "adaptive",
    sim_cache_fraction: float | None = None,
    latent_bytes: float | None = None,
    image_bytes: float | None = None,
    decode_trigger_rate: float | None = None,
    gpu_decode_ms: dict[str, float] | None = None,
) -> tuple[CostInputs, dict[str, str]]:
    """The "our measured" inputs and where each measured figure came from (field -> source)."""
    used: dict[str, str] = {}
    kw: dict[str, Any] = {}
    if store_info is not None:
        kw["store_info"] = store_info
        used["latent_bytes"] = f"store info(): bytes_per_image of {store_info.get('url', 'the store')}"
        if store_info.get("source_known") and store_info.get("source_bytes"):
            used["image_bytes"] = "store info(): source_bytes / source_known (the ingested image files)"
    if latent_bytes is None and "latent_bytes" not in used:
        ratio = MEASURED_DEFAULTS["latent_to_image_bytes"]
        latent_bytes = ratio["value"] * (image_bytes if image_bytes is not None else base.image_bytes)
        used["latent_bytes"] = f"{ratio['value']} x image_bytes; {ratio['source']}"
    elif latent_bytes is not None:
        used["latent_bytes"] = "given"
    if image_bytes is not None:
        used["image_bytes"] = "given"
    if sim_doc is not None and decode_trigger_rate is None:
        kw["sim_doc"] = sim_doc
        used["decode_trigger_rate"] = f"simulation: 1 - image_hit_ratio of {sim_config!r} at {sim_cache_fraction!r}"
    elif decode_trigger_rate is None:
        decode_trigger_rate = MEASURED_DEFAULTS["decode_trigger_rate"]["value"]
        used["decode_trigger_rate"] = MEASURED_DEFAULTS["decode_trigger_rate"]["source"]
    else:
        used["decode_trigger_rate"] = "given"
    if gpu_decode_ms:
        used["gpus"] = f"decode ms given for {sorted(gpu_decode_ms)}; prices as in the published inputs"
    inputs = CostInputs.from_measurements(
        base, latent_bytes=latent_bytes, image_bytes=image_bytes, sim_config=sim_config,
        sim_cache_fraction=sim_cache_fraction, decode_trigger_rate=decode_trigger_rate, gpu_decode_ms=gpu_decode_ms,
        **kw,
    )
    return inputs, used


def build_report(
    published: CostInputs = PUBLISHED,
    measured: CostInputs | None = None,
    *,
    horizon_year: float = 2050,
    measured_sources: dict[str, str] | None = None,
) -> dict[str, Any]:
    """JSON-ready report: the published reproduction (with the paper comparison and sensitivity) and our variant.

    ``published["paper_comparison"]`` has one row per figure of :data:`latentzarr.cost.PAPER_FIGURES`
    (:func:`latentzarr.cost.paper_comparison`); ``published["optimistic"]`` the headline of the same inputs with the
    paper's falling prices.
    """
    head = headline_ratios(published, horizon_year=horizon_year)
    optimistic = published.replace(**OPTIMISTIC_DECLINES)
    doc: dict[str, Any] = {
        "horizon_year": horizon_year,
        "published": {
            "inputs": published.to_dict(),
            "sources": {k: v for k, v in PUBLISHED_SOURCES.items()} if published == PUBLISHED else
            {**PUBLISHED_SOURCES, "note": "some inputs were changed from PUBLISHED on the command line"},
            "headline": head,
            "optimistic": {"declines": dict(OPTIMISTIC_DECLINES),
                           "headline": headline_ratios(optimistic, horizon_year=horizon_year)},
            "paper_comparison": paper_comparison(published, optimistic),
            "sensitivity": sensitivity(published, horizon_year=horizon_year),
        },
    }
    if measured is not None:
        mh = headline_ratios(measured, horizon_year=horizon_year)
        doc["measured"] = {"inputs": measured.to_dict(), "sources": measured_sources or {}, "headline": mh}
    return doc


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _num(x: float) -> str:
    """Two significant digits below 10, else whole numbers (the paper's precision)."""
    return f"{x:.2f}" if abs(x) < 10 else f"{x:.0f}"


def format_report(doc: dict[str, Any]) -> str:
    """Plain-text tables of a :func:`build_report` document."""
    lines: list[str] = []
    pub = doc["published"]
    lines.append("Paper vs this model on the paper's inputs (normalised: cumulative cost / ImgStore's at trace end)")
    lines.append(f"{'figure':<46} {'paper':>7} {'ours':>7} {'rel. error':>10}  within 10%")
    for r in pub["paper_comparison"]:
        saving = r["measure"] != "normalised"
        paper = _pct(r["paper"]) if saving else f"{r['paper']:g}"
        if r["ours"] is None:
            lines.append(f"{r['figure']:<46} {paper:>7} {'n/a':>7} {'':>10}  n/a ({r['scenario']} not in the inputs)")
            continue
        ours = _pct(r["ours"]) if saving else _num(r["ours"])
        lines.append(f"{r['figure']:<46} {paper:>7} {ours:>7} {100 * r['relative_error']:>+9.1f}%  "
                     f"{'yes' if r['within_10pct'] else 'NO'}")
    tables = [("Published inputs", doc["published"]["headline"])]
    if "optimistic" in pub:
        tables.append(("Published inputs, optimistic prices", pub["optimistic"]["headline"]))
    if "measured" in doc:
        given = doc["measured"].get("any_given", True)
        tables.append(("Measured figures given here" if given else "Figures measured in this project (defaults; "
                       "--store, --sim-json or --latent-bytes give your own)", doc["measured"]["headline"]))
    for title, h in tables:
        lines.append("")
        lines.append(f"{title}: cumulative cost (US$), normalised (ImgStore at trace end = 1), saving vs ImgStore")
        tp, hz = h["trace_period"], h["horizon"]
        lines.append(f"{'scenario':<30} {tp['months']:>4}-month US$  norm.  saving | to {hz['year']:g} "
                     f"({hz['months']} months) US$  norm.  saving")
        for name in tp["total_usd"]:
            lines.append(f"{name:<30} {tp['total_usd'][name]:>14,.0f} {_num(tp['normalised'][name]):>6} "
                         f"{_pct(tp['saving_vs_imgstore'][name]):>7} | {hz['total_usd'][name]:>28,.0f} "
                         f"{_num(hz['normalised'][name]):>6} {_pct(hz['saving_vs_imgstore'][name]):>7}")
    return "\n".join(lines)


def write_plot(inputs: CostInputs, path: str | Path, *, horizon_year: float = 2050) -> Path:
    """Three panels: cumulative cost over the trace period, to ``horizon_year``, and to it at falling prices
    (:data:`latentzarr.cost.OPTIMISTIC_DECLINES`)."""
    from latentzarr.cost.plot import plot_cumulative

    months = months_until(inputs, horizon_year)
    start = inputs.trace_end_year - inputs.trace_months / 12.0
    return plot_cumulative(
        [(f"trace period ({inputs.trace_months} months)", cost_series(inputs)),
         (f"projection to {horizon_year:g}", cost_series(inputs, months)),
         (f"to {horizon_year:g}, GPU -20%/yr, storage -10%/yr", cost_series(inputs.replace(**OPTIMISTIC_DECLINES),
                                                                         months))],
        path,
        start_year=start,
    )


def dump(doc: dict[str, Any], path: str | Path) -> Path:
    """Write ``doc`` as JSON (creating the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))
    return path



def run(
    *,
    settings: list[str] | tuple[str, ...] = (),
    gpus: list[str] | tuple[str, ...] = (),
    horizon_year: float = 2050,
    store: str | None = None,
    sim_json: str | Path | None = None,
    sim_config: str = "adaptive",
    sim_fraction: float | None = None,
    latent_bytes: float | None = None,
    image_bytes: float | None = None,
    decode_trigger_rate: float | None = None,
    gpu_decode_ms: list[str] | tuple[str, ...] = (),
    json_out: str | Path | None = None,
    plot_out: str | Path | None = None,
) -> tuple[dict[str, Any], str]:
    """Everything ``latentzarr cost`` and ``workflows/cost_model.py`` do; returns the document and its tables.

    ``settings`` are ``FIELD=VALUE`` changes to the published inputs (e.g. the paper's own prices), ``gpus``
    ``NAME:USD_PER_HOUR:DECODE_MS`` replacing the GPU list; ``store`` (a store URL) and ``sim_json`` (a
    ``latentzarr simulate`` JSON) feed the measured variant; ``gpu_decode_ms`` are ``NAME=MS`` measured decode times.
    """
    changes: dict[str, Any] = dict(parse_setting(s) for s in settings)
    if gpus:
        changes["gpus"] = tuple(parse_gpu(g) for g in gpus)
    published = PUBLISHED.replace(**changes) if changes else PUBLISHED
    store_info = None
    if store is not None:
        from latentzarr.store import LatentStore

        store_info = LatentStore.open(store, mode="r").info()
    sim_doc = None
    if sim_json is not None:
        try:
            sim_doc = json.loads(Path(sim_json).read_text())
        except ValueError as exc:
            raise ValueError(f"Expected a `latentzarr simulate --json` document in {str(sim_json)!r}. Got text that is "
                             f"not JSON instead ({exc}).") from None
    decode_ms: dict[str, float] = {}
    for item in gpu_decode_ms:
        name, sep, value = item.rpartition("=")
        try:
            decode_ms[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ValueError(f"Expected NAME=MS for a measured decode time, e.g. 'H100=21.5'. Got {item!r} instead.")
    measured, used = measured_inputs(
        published, store_info=store_info, sim_doc=sim_doc, sim_config=sim_config,
        sim_cache_fraction=sim_fraction, latent_bytes=latent_bytes, image_bytes=image_bytes,
        decode_trigger_rate=decode_trigger_rate, gpu_decode_ms=decode_ms or None,
    )
    doc = build_report(published, measured, horizon_year=horizon_year, measured_sources=used)
    doc["measured"]["any_given"] = any(x is not None for x in (store, sim_json, latent_bytes, image_bytes,
                                                                 decode_trigger_rate)) or bool(decode_ms)
    if json_out is not None:
        dump(doc, json_out)
    if plot_out is not None:
        Path(plot_out).parent.mkdir(parents=True, exist_ok=True)
        write_plot(published, plot_out, horizon_year=horizon_year)
        measured_plot = Path(plot_out).with_name(Path(plot_out).stem + "_measured.png")
        write_plot(measured, measured_plot, horizon_year=horizon_year)
        doc["plots"] = [str(plot_out), str(measured_plot)]
        if json_out is not None:
            dump(doc, json_out)
    return doc, format_report(doc)
