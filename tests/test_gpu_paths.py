"""The CUDA branches, tested without a GPU: ``torch.cuda``, ``dask_cuda``, ``cudf`` and ``cupy`` are stood in for.

Each test checks the choice the code makes when a GPU is visible (CUDA cluster, fp16 + channels_last, cudf) and
what it does when the GPU path fails. The real thing runs in ``tests/test_gpu.py`` (marked ``gpu``).
"""

from __future__ import annotations

import logging
import sys
import types
from typing import ClassVar

import numpy as np
import pytest
import torch

from latentzarr.cluster import local


class FakeCUDACluster:
    """Records how ``LocalCUDACluster`` was called (and the dask config at that moment)."""

    calls: ClassVar[list[dict]] = []
    fail: ClassVar[Exception | None] = None

    def __init__(self, **kwargs):
        import dask

        if FakeCUDACluster.fail is not None:
            raise FakeCUDACluster.fail
        FakeCUDACluster.calls.append({**kwargs, "_stealing": dask.config.get(
            "distributed.scheduler.work-stealing-interval")})


@pytest.fixture
def gpus(monkeypatch):
    """torch sees 2 GPUs; ``dask_cuda`` is a stand-in whose cluster records its arguments."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    fake = types.ModuleType("dask_cuda")
    fake.LocalCUDACluster = FakeCUDACluster
    monkeypatch.setitem(sys.modules, "dask_cuda", fake)
    FakeCUDACluster.calls = []
    FakeCUDACluster.fail = None
    yield FakeCUDACluster
    FakeCUDACluster.fail = None


def test_factory_picks_cuda_cluster_when_gpus_are_visible(gpus):
    assert local.gpu_count() == 2
    cluster = local.local_cluster(cache_bytes=2**20, threads_per_worker=3)
    assert isinstance(cluster, FakeCUDACluster)
    (call,) = gpus.calls
    assert call["n_workers"] is None  # one worker per GPU: dask-cuda's default
    assert call["resources"] == {"GPU": 1}
    assert call["memory_limit"] == local.WORKER_BASE_MEMORY + 2**20
    assert call["threads_per_worker"] == 3
    assert call["_stealing"] == "20ms"  # the serving config is in force while the cluster starts


@pytest.mark.parametrize("gpu", [None, False])
def test_factory_without_gpus_never_tries_cuda(monkeypatch, gpus, gpu):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0 if gpu is None else 2)
    from distributed import LocalCluster

    with local.local_cluster(n_workers=1, threads_per_worker=1, cache_bytes=2**20, gpu=gpu) as cluster:
        assert isinstance(cluster, LocalCluster) and cluster.latentzarr_fallback is None
    assert gpus.calls == []


def test_factory_falls_back_with_a_logged_reason(gpus, caplog):
    from distributed import LocalCluster

    gpus.fail = RuntimeError("NVMLError_LibraryNotFound: NVML Shared Library Not Found")
    with caplog.at_level(logging.WARNING, logger="latentzarr.cluster.local"):
        cluster = local.local_cluster(n_workers=1, threads_per_worker=1, cache_bytes=2**20)
    with cluster:
        assert isinstance(cluster, LocalCluster) and len(cluster.workers) == 1
        assert "NVMLError_LibraryNotFound" in cluster.latentzarr_fallback
    (record,) = [r for r in caplog.records if r.name == "latentzarr.cluster.local"]
    assert record.levelno == logging.WARNING
    assert "LocalCUDACluster failed: RuntimeError: NVMLError_LibraryNotFound" in record.getMessage()
    assert "falling back to a CPU LocalCluster" in record.getMessage()


def test_factory_falls_back_when_dask_cuda_is_missing(gpus, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "dask_cuda", None)  # import raises ImportError
    with caplog.at_level(logging.WARNING, logger="latentzarr.cluster.local"):
        cluster = local.local_cluster(n_workers=1, threads_per_worker=1, cache_bytes=2**20)
    with cluster:
        assert "dask-cuda is not installed" in cluster.latentzarr_fallback
    assert "latentzarr[gpu]" in caplog.text


def test_factory_gpu_true_raises_instead_of_falling_back(gpus, monkeypatch):
    gpus.fail = RuntimeError("driver mismatch")
    with pytest.raises(RuntimeError, match="driver mismatch"):
        local.local_cluster(gpu=True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(RuntimeError, match="Expected a CUDA GPU for gpu=True"):
        local.local_cluster(gpu=True)


# ------------------------------------------------------------------------------------------------ decoder
class _Probe:
    """What ``decode_tensor`` hands to the decoder."""

    def __init__(self):
        self.seen: list[torch.Tensor] = []


def test_decoder_picks_fp16_and_channels_last_on_cuda(monkeypatch):
    from latentzarr.models.autoencoder import LatentAutoencoder, default_device, default_dtype

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device() == torch.device("cuda")
    assert default_dtype(torch.device("cuda")) == torch.float16
    assert default_dtype(torch.device("cpu")) == torch.float32

    class Model(LatentAutoencoder):
        name, latent_channels = "probe", 4

        def _encode_pixels(self, x):  # pragma: no cover - not used
            raise NotImplementedError

        def _decode_latents(self, z):
            probe.seen.append(z)
            return torch.zeros(z.shape[0], 3, 8 * z.shape[2], 8 * z.shape[3], dtype=z.dtype)

        def weights_sha256(self):
            return "0" * 64

    probe = _Probe()
    on_cuda = Model()  # default device: cuda (stood in)
    assert on_cuda.device.type == "cuda" and on_cuda.dtype == torch.float16 and on_cuda.channels_last
    on_cpu = Model(device="cpu")
    assert on_cpu.dtype == torch.float32 and not on_cpu.channels_last
    # the channels_last branch of decode_tensor, run on CPU: the decoder gets an NHWC-strided tensor
    on_cpu.channels_last = True
    on_cpu.decode(np.zeros((1, 4, 3, 5), np.float32))
    assert probe.seen[-1].is_contiguous(memory_format=torch.channels_last)
    assert not probe.seen[-1].is_contiguous()


def test_diffusers_upcast_config_keeps_float32_on_cuda(monkeypatch):
    """``force_upcast`` VAEs (SD 3, FLUX.1) decode in float32 by default even on CUDA, like diffusers pipelines."""
    from latentzarr.bench.gpu import VAE16_CONFIG, build_vae16

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    moved = []
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *a, **k: moved.append(k) or self)
    tiny = dict(VAE16_CONFIG, block_out_channels=[8, 8, 16, 16], layers_per_block=1, norm_num_groups=4)
    model = build_vae16("cuda", None, config=tiny)
    assert model.dtype == torch.float32 and model.channels_last
    assert moved[-1] == {"device": torch.device("cuda"), "dtype": torch.float32, "memory_format": torch.channels_last}
    model = build_vae16("cuda", "float16", config={**tiny, "force_upcast": False})
    assert model.dtype == torch.float16


# ------------------------------------------------------------------------------------------------ analysis
def _fake_rapids(monkeypatch, devices: int) -> None:
    monkeypatch.setitem(sys.modules, "cudf", types.ModuleType("cudf"))
    cupy = types.ModuleType("cupy")
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: devices))
    monkeypatch.setitem(sys.modules, "cupy", cupy)


def test_analysis_picks_cudf_when_it_imports_and_sees_a_gpu(monkeypatch):
    from latentzarr.traces.analysis import select_backend

    _fake_rapids(monkeypatch, devices=1)
    assert select_backend("auto") == "cudf"
    assert select_backend("cudf") == "cudf"
    assert select_backend("pandas") == "pandas"


def test_analysis_falls_back_to_pandas_without_a_gpu_or_cudf(monkeypatch):
    from latentzarr.traces.analysis import select_backend

    _fake_rapids(monkeypatch, devices=0)
    assert select_backend("auto") == "pandas"
    with pytest.raises(RuntimeError, match="Expected cudf and a CUDA GPU"):
        select_backend("cudf")
    _fake_rapids(monkeypatch, devices=1)
    monkeypatch.setitem(sys.modules, "cudf", None)  # a GPU, but cudf does not import
    assert select_backend("auto") == "pandas"
