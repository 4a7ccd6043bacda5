"""The real CUDA paths (marked ``gpu``: skipped with the reason when torch sees no CUDA device).

On a GPU machine ``pytest -m gpu`` runs these after ``latentzarr bench gpu`` (that command comes first: it is the
one that fills BENCHMARKS.md). Sizes are small so that the whole file takes well under a minute.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gpu


def test_cuda_cluster_has_one_gpu_worker_per_device():
    pytest.importorskip("dask_cuda")
    import torch

    from latentzarr.cluster.local import local_cluster

    with local_cluster(gpu=True, cache_bytes=2**20, threads_per_worker=1) as cluster:
        assert type(cluster).__name__ == "LocalCUDACluster"
        assert len(cluster.workers) == torch.cuda.device_count()
        info = cluster.scheduler_info["workers"]
        assert all(w["resources"] == {"GPU": 1} for w in info.values())


def test_taef2_on_cuda_is_fp16_channels_last_and_close_to_cpu(taef2, taef2_latents_64):
    from latentzarr.models import load_model, psnr

    model = load_model("taef2")  # default device: cuda
    assert model.device.type == "cuda" and str(model.dtype) == "torch.float16" and model.channels_last
    gpu = model.decode(taef2_latents_64)
    assert np.array_equal(gpu, model.decode(taef2_latents_64))  # same setup: bit-exact
    assert psnr(gpu, taef2.decode(taef2_latents_64)) > 35


def test_cuda_graph_replays_the_eager_decode(taef2_latents_64):
    import torch

    from latentzarr.models import load_model
    from latentzarr.models.cuda_graphs import GraphDecoder

    model = load_model("taef2", device="cuda")
    z = torch.from_numpy(taef2_latents_64[:2].astype(np.float32)).to("cuda", model.dtype)
    graph = GraphDecoder(model, tuple(z.shape))
    assert torch.equal(graph(z), model.decode_tensor(z))
    with pytest.raises(ValueError, match="captured shape"):
        graph(z[:1])


def test_compiled_decode_on_cuda_matches_eager(taef2_latents_64):
    from latentzarr.models import load_model, psnr

    eager = load_model("taef2", device="cuda").decode(taef2_latents_64[:1])
    model = load_model("taef2", device="cuda").compile()
    assert model.fingerprint()["compiled"] == "default"
    assert psnr(model.decode(taef2_latents_64[:1]), eager) > 40


def test_bench_gpu_steps_on_cuda(tmp_path):
    from latentzarr.bench.gpu import VAE16_CONFIG, bench_gpu

    tiny = dict(VAE16_CONFIG, block_out_channels=[8, 8, 16, 16], layers_per_block=1, norm_num_groups=4)
    doc = bench_gpu(sizes=(64,), batches=(1, 2), runs=3, vae_config=tiny, steps=("facts", "decode", "bitexact"),
                    budget_s=120, work_dir=tmp_path)
    assert doc["device"] == "cuda" and doc["status"] == "ok", doc
    cases = doc["steps"]["decode:vae16"]["result"]["cases"]
    graph = [c for c in cases if c["mode"] == "cuda_graph"]
    assert graph and all(c["status"] == "ok" and c["decoder_memory_bytes"] > 0 for c in graph)
    assert doc["steps"]["bitexact"]["result"]["cpu_vs_device"]["exact_share"] > 0.3


def test_cudf_analysis_equals_pandas(tmp_path):
    pytest.importorskip("cudf")
    from latentzarr.bench.gpu import step_cudf

    res = step_cudf("cuda", work_dir=tmp_path, n_requests=50_000)
    assert res["backends"]["cudf"]["equal_to_pandas"], res
