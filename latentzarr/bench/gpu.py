"""``latentzarr bench gpu``: every GPU measurement in one bounded run, each step isolated from the others.

A GPU machine is lent for minutes, so one command measures everything and never stops at the first failure:

* ``facts`` -- device, driver, CUDA and memory (``nvidia-smi`` and torch);
* ``decode:<model>`` -- decode latency (median and P99 over ``runs`` runs) per size, batch and mode: eager
  fp32 / fp16 / bf16, ``torch.compile`` and CUDA graphs (static shapes), images/s at the best batch, and the
  GPU memory one decoder takes. Models: ``taef2`` (trained weights from ``LATENTZARR_MODELS``) and ``vae16``,
  the full-size 16-channel diffusers ``AutoencoderKL`` of SD 3 / FLUX.1 built from its config in code with
  **random weights** (timing does not depend on weight values; nothing is downloaded);
* ``compile`` -- ``torch.compile`` against eager taef2 decode, run in alternation: speed-up, compile cost,
  decodes to break even (the CPU figures in BENCHMARKS.md come from ``--device cpu --steps compile``);
* ``bitexact`` -- one latent decoded twice, at batch 1 vs inside a batch of 8, and on CPU vs this device:
  PSNR and the share of bit-exact pixel values;
* ``cluster`` -- image-hit p50 (:func:`~latentzarr.bench.serving.bench_serving`), latent-hit p50 and decodes/s
  under load (micro-batching on) through :func:`~latentzarr.cluster.start_cluster` (``LocalCUDACluster`` on a GPU);
* ``batch_zarr`` -- :func:`~latentzarr.batch.batch_decode` to Zarr, images/s against the pure decode ceiling;
* ``cudf`` -- :func:`~latentzarr.traces.analyze_trace` of a generated trace with cudf and pandas: equal results
  and the speed-up.

Every step is a function of a ``device`` (and small size knobs), so tests run each one on CPU at a tiny size.
:func:`run_steps` records each step's result, or its error and traceback, and goes on. A run has a time budget;
a sub-measurement that would start after its deadline is recorded as skipped, not run.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from latentzarr.bench._common import machine_info

__all__ = [
    "DECODE_MODES",
    "VAE16_CONFIG",
    "VAE16_TARGET_MS",
    "StepSkipped",
    "bench_gpu",
    "build_vae16",
    "cuda_available",
    "run_steps",
    "step_batch_zarr",
    "step_bitexact",
    "step_cluster",
    "step_compile",
    "step_cudf",
    "step_decode",
    "step_facts",
]

VAE16_TARGET_MS = 30.0
"""The bar: full-size 16-channel VAE decode of a 1024^2 latent (128x128), batch 1, best mode (ms).
Paper: 32.6 ms on an H100 with TensorRT (LatentBox paper, via shared/paper-figures.md)."""

VAE16_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 16,
    "norm_num_groups": 32,
    "sample_size": 1024,
    "scaling_factor": 1.5305,
    "shift_factor": 0.0609,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
    "force_upcast": True,
}
"""The ``AutoencoderKL`` config of the Stable Diffusion 3 / 3.5 VAE (FLUX.1's differs only in scaling 0.3611 and
shift 0.1159): 16 latent channels, 8x downscale, ~84 M parameters (decoder ~50 M)."""

DECODE_MODES = ("fp32", "fp16", "bf16", "compile", "cuda_graph")
"""Decode modes: eager in three compute dtypes, ``torch.compile`` (fp16 on CUDA, fp32 on CPU), CUDA graph (fp16)."""

_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class StepSkipped(Exception):
    """Raised by a step (or a part of one) that does not apply here; recorded as ``skipped`` with the reason."""


# ---------------------------------------------------------------------------------------------- plumbing
def cuda_available() -> bool:
    """Whether torch sees a usable CUDA device."""
    import torch

    try:
        return bool(torch.cuda.is_available()) and torch.cuda.device_count() > 0
    except Exception:  # broken driver installs raise here
        return False


def _sync(device: Any) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def run_steps(steps: Sequence[tuple[str, Callable[[], Any]]], *,
              progress: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Run ``steps`` (name, zero-argument callable) in order; one failure never stops the others.

    Returns ``{name: record}``; a record has ``status`` (``"ok"``, ``"error"`` or ``"skipped"``), ``seconds``
    (wall time, s) and ``result`` (ok), ``error`` and ``traceback`` (error) or ``reason`` (skipped).
    ``progress`` gets one line before and one after each step.
    """
    say = progress or (lambda line: None)
    out: dict[str, dict[str, Any]] = {}
    for k, (name, fn) in enumerate(steps, 1):
        say(f"[{k}/{len(steps)}] {name} ...")
        t0 = time.perf_counter()
        try:
            record: dict[str, Any] = {"status": "ok", "result": fn()}
        except StepSkipped as exc:
            record = {"status": "skipped", "reason": str(exc)}
        except Exception as exc:  # isolation is the point: record and go on
            record = {"status": "error", "error": _error(exc), "traceback": traceback.format_exc()[-4000:]}
        record["seconds"] = time.perf_counter() - t0
        out[name] = record
        detail = record.get("error") or record.get("reason") or ""
        say(f"[{k}/{len(steps)}] {name}: {record['status']} in {record['seconds']:.1f} s"
            + (f" ({detail[:200]})" if detail else ""))
    return out


def _time(fn: Callable[[], Any], device: Any, runs: int, warmup: int = 2) -> dict[str, float]:
    """Median, P99, mean and min latency (ms) of ``fn`` over ``runs`` runs after ``warmup`` (device-synchronised)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    lat = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        lat[i] = (time.perf_counter() - t0) * 1000
    return {"n": runs, "p50_ms": float(np.median(lat)), "p99_ms": float(np.percentile(lat, 99)),
            "mean_ms": float(lat.mean()), "min_ms": float(lat.min())}


# ---------------------------------------------------------------------------------------------- models
def build_vae16(device: Any = "cpu", dtype: Any = "float32", *, config: dict[str, Any] | None = None,
                seed: int = 0) -> Any:
    """A :class:`~latentzarr.models.DiffusersAutoencoder` around an ``AutoencoderKL`` built from ``config``.

    Default: :data:`VAE16_CONFIG` (full size). Weights are random (seeded); no network, no files.
    """
    import diffusers
    import torch

    from latentzarr.models.diffusers_vae import DiffusersAutoencoder

    cfg = dict(VAE16_CONFIG if config is None else config)
    torch.manual_seed(seed)
    vae = diffusers.AutoencoderKL(**cfg)
    return DiffusersAutoencoder(vae, "vae16-random", device=device, dtype=dtype)


def _loader(model: str, vae_config: dict[str, Any] | None) -> Callable[[Any, str], Any]:
    if model == "vae16":
        return lambda device, dtype: build_vae16(device, dtype, config=vae_config)
    from latentzarr.models import load_model

    return lambda device, dtype: load_model(model, device=device, dtype=dtype)


def _latents(model: Any, batch: int, size: int, seed: int = 0) -> Any:
    import torch

    d = model.downscale
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, model.latent_channels, size // d, size // d, generator=g).to(model.device, model.dtype)
    return z.contiguous(memory_format=torch.channels_last) if model.channels_last else z


# ---------------------------------------------------------------------------------------------- steps
def step_facts(device: Any = "cuda") -> dict[str, Any]:
    """Device, driver, CUDA and memory: ``nvidia-smi`` output (when on PATH) and torch's view of ``device``."""
    import torch

    out: dict[str, Any] = {"device": str(device), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
                           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                           "machine": machine_info()}
    smi = shutil.which("nvidia-smi")
    if smi:
        q = "name,driver_version,memory.total,memory.used,power.limit,clocks.max.sm,compute_cap"
        try:
            res = subprocess.run([smi, f"--query-gpu={q}", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=20, check=False)
            out["nvidia_smi"] = {"query": q, "rows": res.stdout.strip().splitlines(), "rc": res.returncode}
        except (OSError, subprocess.TimeoutExpired) as exc:
            out["nvidia_smi"] = {"error": _error(exc)}
    else:
        out["nvidia_smi"] = None
    if torch.device(device).type == "cuda":
        props = torch.cuda.get_device_properties(device)
        free, total = torch.cuda.mem_get_info(device)
        out.update(name=props.name, capability=f"{props.major}.{props.minor}", sms=props.multi_processor_count,
                   memory_total_bytes=int(total), memory_free_bytes=int(free), device_count=torch.cuda.device_count())
    return out


def _decode_plan(sizes: Sequence[int], batches: Sequence[int], modes: Sequence[str],
                 compile_batches: Sequence[int]) -> list[tuple[int, int, str]]:
    """(size, batch, mode) in the order that measures the most important figures first."""
    plan = []
    order = [m for m in ("fp16", "bf16", "cuda_graph", "fp32") if m in modes]
    for size in sorted(sizes, reverse=True):
        for batch in sorted(batches):
            plan += [(size, batch, mode) for mode in order]
    plan += [(s, b, "compile") for s in sorted(sizes, reverse=True) for b in sorted(batches)
             if "compile" in modes and b in compile_batches]
    return plan


def step_decode(device: Any = "cuda", *, model: str = "taef2", sizes: Sequence[int] = (512, 1024),
                batches: Sequence[int] = (1, 8), modes: Sequence[str] = DECODE_MODES, runs: int = 50,
                compile_batches: Sequence[int] = (1,), deadline: float | None = None,
                vae_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Decode latency of ``model`` (``"taef2"`` or ``"vae16"``) per (size px, batch, mode) on ``device``.

    Returns ``{"model", "weights", "cases": [...], "best": {...}, "images_per_s": {...}}``. Each case has
    ``size``, ``batch``, ``mode``, ``status`` and, when ok, ``p50_ms``, ``p99_ms``, ``mean_ms``, ``min_ms``,
    ``images_per_s`` (batch / median), ``warmup_s`` (model build, compile or capture plus the warm-up runs),
    ``weights_bytes`` (decoder parameters) and, on CUDA, ``activation_peak_bytes`` (peak allocation of the decode
    over what was allocated before it) and ``decoder_memory_bytes`` (the two together: one decoder's memory).
    A case that fails or does not
    apply (CUDA graphs on CPU) is recorded with its ``error`` or ``reason``; a case that would start after
    ``deadline`` (``time.monotonic()``) is ``skipped``. ``best[size]`` is the fastest batch-1 case per size;
    ``images_per_s[size]`` the highest images/s over batches and modes.
    """
    import torch

    for mode in modes:
        if mode not in DECODE_MODES:
            raise ValueError(f"Expected decode modes among {DECODE_MODES}. Got {mode!r} instead.")
    if runs < 1:
        raise ValueError(f"Expected runs >= 1. Got {runs!r} instead.")
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # static shapes: let cuDNN pick the fastest kernels once per shape
    load = _loader(model, vae_config)
    cases: list[dict[str, Any]] = []
    cache: dict[str, Any] = {}
    for size, batch, mode in _decode_plan(sizes, batches, modes, compile_batches):
        case: dict[str, Any] = {"size": size, "batch": batch, "mode": mode}
        cases.append(case)
        if deadline is not None and time.monotonic() > deadline:
            case.update(status="skipped", reason="time budget spent")
            continue
        try:
            case.update(_decode_case(dev, load, cache, size, batch, mode, runs), status="ok")
        except StepSkipped as exc:
            case.update(status="skipped", reason=str(exc))
        except Exception as exc:
            case.update(status="error", error=_error(exc))
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    ok = [c for c in cases if c["status"] == "ok"]
    best = {}
    ips = {}
    for size in sizes:
        b1 = [c for c in ok if c["size"] == size and c["batch"] == 1]
        if b1:
            c = min(b1, key=lambda c: c["p50_ms"])
            best[str(size)] = {"mode": c["mode"], "p50_ms": c["p50_ms"], "p99_ms": c["p99_ms"]}
        anyb = [c for c in ok if c["size"] == size]
        if anyb:
            c = max(anyb, key=lambda c: c["images_per_s"])
            ips[str(size)] = {"mode": c["mode"], "batch": c["batch"], "images_per_s": c["images_per_s"]}
    weights = "random (timing does not depend on weight values)" if model == "vae16" else "trained"
    return {"model": model, "device": str(dev), "weights": weights, "runs": runs, "cases": cases, "best": best,
            "images_per_s": ips, "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32)}


def _decode_case(dev: Any, load: Callable[[Any, str], Any], cache: dict[str, Any], size: int, batch: int,
                 mode: str, runs: int) -> dict[str, Any]:
    import torch

    cuda = dev.type == "cuda"
    if mode == "cuda_graph" and not cuda:
        raise StepSkipped("CUDA graphs need a CUDA device")
    dtype = _DTYPES.get(mode, "float16" if cuda else "float32")
    if mode == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise StepSkipped("bfloat16 is not supported on this GPU")
    t0 = time.perf_counter()
    key = f"{dtype}:{mode == 'compile'}"
    m = cache.get(key)
    if m is None:
        m = cache[key] = load(dev, dtype)
        if mode == "compile":
            m.compile()
    if cuda:
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    z = _latents(m, batch, size)
    if mode == "cuda_graph":
        from latentzarr.models.cuda_graphs import GraphDecoder

        graph = GraphDecoder(m, tuple(z.shape))

        def fn() -> Any:
            return graph(z)
    else:
        def fn() -> Any:
            return m.decode_tensor(z)
    fn()  # first call: compile / cuDNN autotune
    _sync(dev)
    warm = time.perf_counter() - t0
    stats = _time(fn, dev, runs)
    out = {**stats, "images_per_s": batch * 1000 / stats["p50_ms"], "warmup_s": warm, "dtype": dtype}
    out["weights_bytes"] = _weights_bytes(m)
    if cuda:
        out["activation_peak_bytes"] = int(torch.cuda.max_memory_allocated(dev) - base)
        out["decoder_memory_bytes"] = out["weights_bytes"] + out["activation_peak_bytes"]
    if mode == "cuda_graph":
        del graph
    return out


def step_compile(device: Any = "cpu", *, model: str = "taef2", sizes: Sequence[int] = (64, 256, 512),
                 batch: int = 1, runs: int = 10, deadline: float | None = None,
                 vae_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """``torch.compile`` against eager decode on ``device``, measured in alternation (robust on a shared machine).

    Per size: ``compile_s`` (first compiled call: the warm-up cost, paid once per latent shape and process),
    ``eager`` and ``compiled`` latency summaries over ``runs`` runs taken in turn (eager, compiled, eager, ...),
    ``speedup`` (median over the pairs of eager / compiled time: > 1 means compiled is faster),
    ``break_even_decodes`` (decodes after which the compile time is paid back; None when compiled is not faster)
    and ``psnr_db`` / ``max_abs_diff`` of the compiled output against eager. Sizes past ``deadline`` are skipped.
    """
    import torch

    dev = torch.device(device)
    load = _loader(model, vae_config)
    eager_model = load(dev, None)
    compiled_model = load(dev, None).compile()
    out: dict[str, Any] = {"model": model, "device": str(dev), "dtype": str(eager_model.dtype).removeprefix("torch."),
                           "threads": torch.get_num_threads() if dev.type == "cpu" else None, "batch": batch,
                           "runs": runs, "sizes": {}}
    for size in sizes:
        if deadline is not None and time.monotonic() > deadline:
            out["sizes"][str(size)] = {"status": "skipped", "reason": "time budget spent"}
            continue
        z = _latents(eager_model, batch, size)
        ref = eager_model.decode_tensor(z)
        _sync(dev)
        t0 = time.perf_counter()
        got = compiled_model.decode_tensor(z)
        _sync(dev)
        compile_s = time.perf_counter() - t0
        a = (ref.float() * 255).round().to(torch.uint8).cpu().numpy()
        b = (got.float() * 255).round().to(torch.uint8).cpu().numpy()
        cmp = _compare(a, b)
        eager_ms, comp_ms = [], []
        for _ in range(runs):
            for fn, sink in ((eager_model.decode_tensor, eager_ms), (compiled_model.decode_tensor, comp_ms)):
                t0 = time.perf_counter()
                fn(z)
                _sync(dev)
                sink.append((time.perf_counter() - t0) * 1000)
        e, c = np.asarray(eager_ms), np.asarray(comp_ms)
        speedup = float(np.median(e / c))
        saved_ms = float(np.median(e - c))
        out["sizes"][str(size)] = {
            "status": "ok", "compile_s": compile_s,
            "eager": {"p50_ms": float(np.median(e)), "p99_ms": float(np.percentile(e, 99)), "min_ms": float(e.min())},
            "compiled": {"p50_ms": float(np.median(c)), "p99_ms": float(np.percentile(c, 99)),
                         "min_ms": float(c.min())},
            "speedup": speedup,
            "break_even_decodes": math.ceil(compile_s * 1000 / saved_ms) if saved_ms > 0 else None,
            "psnr_db": cmp["psnr_db"], "max_abs_diff": cmp["max_abs_diff"]}
    return out


def _weights_bytes(m: Any) -> int:
    """Bytes of the decoder's parameters (a TinyAutoencoder's ``decoder``, a diffusers VAE's ``vae.decoder``)."""
    module = m.vae.decoder if hasattr(m, "vae") and hasattr(m.vae, "decoder") else m.decoder
    return int(sum(p.numel() * p.element_size() for p in module.parameters()))


def _compare(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    from latentzarr.models.autoencoder import psnr

    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    p = psnr(a, b)
    return {"psnr_db": None if math.isinf(p) else p, "identical": bool((diff == 0).all()),
            "exact_share": float((diff == 0).mean()), "max_abs_diff": int(diff.max()),
            "within_1_share": float((diff <= 1).mean())}


def step_bitexact(device: Any = "cuda", *, model: str = "taef2", size: int = 512, batch: int = 8,
                  dtype: str | None = None, vae_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Determinism of decodes on ``device``: a latent decoded twice, at batch 1 vs in a batch of ``batch``, and
    on CPU (float32) vs ``device`` (its default compute dtype, or ``dtype``).

    Latents: the sample photos encoded by taef2 on CPU (``model="taef2"``), random ones otherwise. Each comparison
    gives ``psnr_db`` (None when identical), ``exact_share`` (share of uint8 pixel values equal, as the paper reports
    for H100 vs L4), ``max_abs_diff`` (levels) and ``within_1_share``. ``cpu_vs_device`` is skipped on CPU.
    """
    import torch

    dev = torch.device(device)
    load = _loader(model, vae_config)
    m = load(dev, dtype)
    if model == "taef2":
        from latentzarr.samples import sample_images

        photos = np.stack(list(sample_images(size).values()))
        reps = -(-batch // len(photos))
        photos = np.concatenate([photos] * reps)[:batch]
        cpu = load("cpu", "float32")
        latents = cpu.encode(photos, dtype=np.float32)
    else:
        cpu = None
        g = torch.Generator().manual_seed(1)
        d = m.downscale
        latents = torch.randn(batch, m.latent_channels, size // d, size // d, generator=g).numpy()
    one = m.decode(latents[:1], batch_size=1)
    again = m.decode(latents[:1], batch_size=1)
    in_batch = m.decode(latents, batch_size=batch)[:1]
    out: dict[str, Any] = {"model": model, "size": size, "batch": batch, "device": str(dev),
                           "dtype": str(m.dtype).removeprefix("torch."),
                           "twice": _compare(one, again), "batch1_vs_batch": _compare(one, in_batch)}
    if dev.type == "cpu":
        out["cpu_vs_device"] = {"status": "skipped", "reason": "the device is the CPU"}
    else:
        if cpu is None:
            cpu = load("cpu", "float32")  # vae16: the same seeded random weights
        ref = cpu.decode(latents[:1], batch_size=1)
        out["cpu_vs_device"] = _compare(ref, one)
    return out


def _sample_store(work: Path, size: int, n_images: int) -> str:
    from latentzarr.bench._common import build_sample_store

    path = work / f"sample-{size}-{n_images}.zarr"
    if not path.exists():
        build_sample_store(path, n_images=n_images, size=size)
    return str(path)


def step_cluster(device: Any = "cuda", *, work_dir: str | os.PathLike[str], size: int = 512, n_images: int = 32,
                 reads: int = 200, in_flight: int = 16, max_batch: int = 8) -> dict[str, Any]:
    """Serving through a local cluster on a store of ``n_images`` real ``size`` px pictures (taef2).

    ``image_hit``: :func:`~latentzarr.bench.serving.bench_serving` (its cluster p50/p99 and reads/s).
    ``latent_hit``: a second cluster whose caches never promote to the image tier, so every read after the first
    is a latent hit (one decode each): p50/p99 with one read in flight, then ``under_load`` with ``in_flight``
    concurrent reads (the worker micro-batches up to ``max_batch`` decodes): ``decodes_per_s`` is the timed
    reads/s times the share of the reads sent that decoded (concurrent reads of one id coalesce).
    The cluster is a ``LocalCUDACluster`` (one worker per GPU) when ``device`` is CUDA and dask-cuda works, else
    (``cluster_fallback`` says why) a ``LocalCluster`` of that many processes whose decoders still run on the GPU;
    on CPU a ``LocalCluster`` of 2 processes.
    """
    import asyncio

    import torch

    from latentzarr.bench.serving import _async_reads, bench_serving
    from latentzarr.cluster import start_cluster
    from latentzarr.cluster.local import gpu_count

    cuda = torch.device(device).type == "cuda"
    n_workers = max(1, gpu_count()) if cuda else 2
    store = _sample_store(Path(work_dir), size, n_images)
    image = bench_serving(store, n_ids=n_images, reads=reads, in_flight=in_flight, repeats=1, n_workers=n_workers)
    out: dict[str, Any] = {"size": size, "workers": n_workers, "gpu": cuda,
                           "image_hit": {k: image[k] for k in ("cluster", "cluster_async", "rpc_floor")}}
    from latentzarr.store import LatentStore

    ids = LatentStore.open(store).ids()[:n_images]
    lc = start_cluster(store, n_workers=n_workers, threads_per_worker=2, gpu=None if cuda else False,
                       cache_options={"promote_after": 10**9}, max_batch=max_batch,
                       device="cuda" if cuda else "cpu")
    try:
        cluster_kind = type(lc._cluster).__name__
        fallback = getattr(lc._cluster, "latentzarr_fallback", None)
        for i in ids:  # first reads: misses that fill the latent tiers and load the decoders
            lc.read(i)
        before = lc.stats()["total"]
        lat = []
        seq = [ids[k % len(ids)] for k in range(max(reads // 4, len(ids)))]
        t_start = time.perf_counter()
        for i in seq:
            t0 = time.perf_counter()
            lc.read(i)
            lat.append((time.perf_counter() - t0) * 1000)
        wall = time.perf_counter() - t_start
        mid = lc.stats()["total"]
        load = [ids[k % len(ids)] for k in range(reads)]
        t0 = time.perf_counter()
        conc = asyncio.run(_async_reads(lc.client.scheduler.address, load, in_flight, "png", None))
        wall_load = time.perf_counter() - t0
        after = lc.stats()["total"]
    finally:
        lc.close()
    from latentzarr.bench._common import summarize

    decodes = after.get("decodes", 0) - mid.get("decodes", 0)
    out["cluster_class"] = cluster_kind
    out["cluster_fallback"] = fallback
    out["latent_hit"] = {**summarize(lat, wall), "decodes": mid.get("decodes", 0) - before.get("decodes", 0)}
    sent = len(load) + min(in_flight, len(load))  # _async_reads opens its connections with in_flight reads first
    out["under_load"] = {**conc, "in_flight": in_flight, "max_batch": max_batch, "reads_sent": sent,
                         "decodes": decodes, "decodes_per_s": conc["reads_per_s"] * decodes / sent,
                         "wall_s_with_client_start": wall_load}
    return out


def step_batch_zarr(device: Any = "cuda", *, work_dir: str | os.PathLike[str], size: int = 512,
                    n_images: int = 32, batch_size: int = 8, dtype: str | None = None) -> dict[str, Any]:
    """:func:`~latentzarr.batch.batch_decode` of ``n_images`` taef2 latents to a Zarr training set on ``device``,
    against the pure decode ceiling (the same latents, same model and batch size, decoded in memory): images/s of
    both and their ratio."""
    import torch

    from latentzarr.batch import batch_decode
    from latentzarr.models import load_model
    from latentzarr.store import LatentStore

    store = _sample_store(Path(work_dir), size, n_images)
    model = load_model("taef2", device=torch.device(device), dtype=dtype, batch_size=batch_size)
    src = LatentStore.open(store)
    ids = src.ids()
    latents = src.get(ids)
    model.decode(latents[:batch_size])  # warm-up (cuDNN autotune)
    _sync(device)
    t0 = time.perf_counter()
    model.decode(latents)
    _sync(device)
    ceiling_s = time.perf_counter() - t0
    out_dir = Path(work_dir) / f"batch-{time.monotonic_ns()}.zarr"
    report = batch_decode(store, str(out_dir), batch_size=batch_size, progress=False, model=model)
    shutil.rmtree(out_dir, ignore_errors=True)
    ceiling = len(ids) / ceiling_s
    return {"size": size, "images": report.images, "batch_size": batch_size, "device": str(device),
            "batch_images_per_s": report.images_per_s, "decode_ceiling_images_per_s": ceiling,
            "ratio_to_ceiling": report.images_per_s / ceiling, "decode_busy_share": report.decode_seconds
            / report.seconds if report.seconds else None}


def _close(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths where two JSON-like values differ (numbers within 1e-9 relative)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [p for k in set(a) | set(b) for p in _close(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return [path]
        return [p for k, (x, y) in enumerate(zip(a, b, strict=True)) for p in _close(x, y, f"{path}[{k}]")]
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return [] if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (a != a and b != b) else [path]
    return [] if a == b else [path]


_TIMING_KEYS = {"seconds", "backend", "path", "plots"}


def step_cudf(device: Any = "cuda", *, work_dir: str | os.PathLike[str], n_requests: int = 2_000_000,
              backends: Sequence[str] = ("pandas", "cudf")) -> dict[str, Any]:
    """:func:`~latentzarr.traces.analyze_trace` of a generated trace (``n_requests`` requests, Parquet) with each
    backend: seconds per backend, whether the statistics equal the pandas ones (``mismatches``: keys that differ)
    and the speed-up over pandas. A backend that cannot run here is recorded with the reason."""
    from latentzarr.traces import analyze_trace
    from latentzarr.traces.readers import write_trace
    from latentzarr.traces.synth import synth_trace

    path = Path(work_dir) / f"trace-{n_requests}.parquet"
    if not path.exists():
        write_trace(synth_trace(n_requests, seed=0), path)
    runs: dict[str, Any] = {}
    stats: dict[str, dict] = {}
    for backend in backends:
        try:
            s = analyze_trace(path, backend=backend)
        except Exception as exc:
            runs[backend] = {"status": "error", "error": _error(exc)}
            continue
        stats[backend] = s
        runs[backend] = {"status": "ok", "seconds": s["seconds"]}
    ref = stats.get("pandas")
    for backend, s in stats.items():
        if backend != "pandas" and ref is not None:
            a = {k: v for k, v in ref.items() if k not in _TIMING_KEYS}
            b = {k: v for k, v in s.items() if k not in _TIMING_KEYS}
            runs[backend]["mismatches"] = sorted(_close(a, b))[:50]
            runs[backend]["equal_to_pandas"] = not runs[backend]["mismatches"]
            runs[backend]["speedup_over_pandas"] = runs["pandas"]["seconds"] / s["seconds"]
    return {"n_requests": n_requests, "backends": runs}


# ---------------------------------------------------------------------------------------------- the run
def bench_gpu(*, device: str | None = None, sizes: Sequence[int] = (512, 1024), batches: Sequence[int] = (1, 8),
              runs: int = 50, models: Sequence[str] = ("vae16", "taef2"), modes: Sequence[str] = DECODE_MODES,
              steps: Sequence[str] | None = None, budget_s: float = 420.0, cluster_size: int = 512,
              trace_requests: int = 2_000_000, vae_config: dict[str, Any] | None = None,
              work_dir: str | os.PathLike[str] | None = None,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every GPU measurement in one run of at most about ``budget_s`` seconds (see the module docstring).

    ``device=None`` uses ``cuda`` and returns ``{"status": "no_gpu", ...}`` at once (no figures) when torch sees
    no CUDA device; ``device="cpu"`` runs the same steps on CPU (for tests and smoke runs; the figures are CPU
    figures and say so). ``steps`` picks a subset of ``facts``, ``decode``, ``compile`` (compiled vs eager taef2 in
    alternation, with the compile cost), ``bitexact``, ``cluster``, ``batch_zarr``, ``cudf``
    (default: all but ``compile``, which ``decode`` covers on a GPU). ``bar`` compares the ``vae16`` 1024 px
    batch-1 best p50 with :data:`VAE16_TARGET_MS`.
    """
    all_steps = ("facts", "decode", "compile", "bitexact", "cluster", "batch_zarr", "cudf")
    chosen = tuple([s for s in all_steps if s != "compile"] if steps is None else steps)
    for s in chosen:
        if s not in all_steps:
            raise ValueError(f"Expected steps among {all_steps}. Got {s!r} instead.")
    settings = {"device": device, "sizes": list(sizes), "batches": list(batches), "runs": runs,
                "models": list(models), "modes": list(modes), "steps": list(chosen), "budget_s": budget_s,
                "cluster_size": cluster_size, "trace_requests": trace_requests}
    doc: dict[str, Any] = {"bench": "gpu", "settings": settings}
    if device is None:
        if not cuda_available():
            import torch

            doc.update(status="no_gpu", reason=f"torch {torch.__version__} sees no CUDA device "
                       f"(torch.version.cuda={torch.version.cuda}); nothing was measured")
            return doc
        device = "cuda"
    start = time.monotonic()
    deadline = start + budget_s
    # shares of the budget: decode gets most of it, the rest are bounded by their own sizes
    decode_share = 0.55 / max(1, len(models))
    with contextlib.ExitStack() as stack:
        work = Path(work_dir) if work_dir is not None else Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="latentzarr-bench-gpu-")))
        work.mkdir(parents=True, exist_ok=True)
        plan: list[tuple[str, Callable[[], Any]]] = []
        if "facts" in chosen:
            plan.append(("facts", lambda: step_facts(device)))
        if "decode" in chosen:
            for name in models:
                plan.append((f"decode:{name}", _bind(step_decode, device, model=name, sizes=sizes, batches=batches,
                                                     modes=modes, runs=runs, vae_config=vae_config,
                                                     deadline_at=lambda: min(
                                                         deadline, time.monotonic() + decode_share * budget_s))))
        if "compile" in chosen:
            plan.append(("compile", _bind(step_compile, device, model="taef2", sizes=sizes, runs=min(runs, 20),
                                          deadline_at=lambda: deadline)))
        if "bitexact" in chosen:
            plan.append(("bitexact", lambda: step_bitexact(device, size=min(sizes))))
        if "cluster" in chosen:
            plan.append(("cluster", _guard(deadline, lambda: step_cluster(device, work_dir=work,
                                                                          size=cluster_size))))
        if "batch_zarr" in chosen:
            plan.append(("batch_zarr", _guard(deadline, lambda: step_batch_zarr(device, work_dir=work,
                                                                                size=cluster_size))))
        if "cudf" in chosen:
            plan.append(("cudf", _guard(deadline, lambda: step_cudf(device, work_dir=work,
                                                                    n_requests=trace_requests))))
        doc["steps"] = run_steps(plan, progress=progress)
    doc["status"] = "ok" if all(r["status"] == "ok" for r in doc["steps"].values()) else "partial"
    doc["device"] = str(device)
    doc["seconds"] = time.monotonic() - start
    doc["bar"] = _bar(doc["steps"])
    return doc


def _bind(fn: Callable[..., Any], device: Any, *, deadline_at: Callable[[], float], **kwargs: Any) -> Callable:
    """A step that computes its deadline when it starts (so earlier steps' overruns shrink it, never extend it)."""
    return lambda: fn(device, deadline=deadline_at(), **kwargs)


def _guard(deadline: float, fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        if time.monotonic() > deadline:
            raise StepSkipped("time budget spent")
        return fn()
    return run


def _bar(steps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rec = steps.get("decode:vae16", {})
    best = rec.get("result", {}).get("best", {}).get("1024") if rec.get("status") == "ok" else None
    taef2 = steps.get("decode:taef2", {}).get("result", {}).get("best", {}).get("1024")
    return {"vae16_1024_b1_target_ms": VAE16_TARGET_MS, "vae16_1024_b1": best, "taef2_1024_b1": taef2,
            "met": None if best is None else best["p50_ms"] <= VAE16_TARGET_MS}


def write_json(doc: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``doc`` as indented JSON (non-finite floats as null)."""
    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        return x
    Path(path).write_text(json.dumps(clean(doc), indent=1, default=str) + "\n")
