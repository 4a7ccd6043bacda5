"""A store written with the codec opens with plain ``zarr.open`` where only zarr, numcodecs, pcodec, numpy and
latentzarr-codecs are installed (no torch, no dask, no latentzarr): a fresh virtual environment from the registry."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import zarr
from codec_helpers import special_values
from latentzarr_codecs import LatentCodec

CODECS_DIR = Path(__file__).resolve().parents[2] / "codecs"

READER = textwrap.dedent(
    """
    import importlib, json, sys
    for banned in ("torch", "dask", "latentzarr", "ml_dtypes"):
        try:
            importlib.import_module(banned)
        except ImportError:
            pass
        else:
            sys.exit(f"{banned} must not be importable in the isolated environment")
    import numpy as np
    import zarr
    root = sys.argv[1]
    report = {}
    for name in ("float16", "bfloat16_bits"):
        values = zarr.open(f"{root}/{name}.zarr", mode="r")[:]
        expected = np.load(f"{root}/{name}.npy")
        report[name] = [str(values.dtype), bool(np.array_equal(values.view(np.uint16), expected.view(np.uint16)))]
    print(json.dumps(report))
    """
)


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=540, check=False)


@pytest.mark.slow
def test_plain_zarr_reads_store_without_torch_or_dask(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    cases = {
        "float16": (special_values("float16", (4, 32, 16, 16), seed=7), "float16", LatentCodec()),
        "bfloat16_bits": (
            special_values("bfloat16", (4, 32, 16, 16), seed=8).view(np.uint16),
            "uint16",
            LatentCodec(dtype="bfloat16"),
        ),
    }
    for name, (values, zarr_dtype, codec) in cases.items():
        array = zarr.create_array(
            data / f"{name}.zarr",
            shape=values.shape,
            chunks=(1, 32, 16, 16),
            shards=values.shape,
            dtype=zarr_dtype,
            serializer=codec,
            compressors=None,
        )
        array[:] = values
        np.save(data / f"{name}.npy", values)

    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    installed = _run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(CODECS_DIR)], cwd=tmp_path
    )
    if installed.returncode != 0 and "NewConnectionError" in installed.stderr + installed.stdout:
        pytest.skip(f"the package registry is unreachable: {installed.stderr[-300:]}")
    assert installed.returncode == 0, installed.stderr[-2000:]

    (tmp_path / "reader.py").write_text(READER)
    read = _run([str(python), str(tmp_path / "reader.py"), str(data)], cwd=tmp_path)
    assert read.returncode == 0, read.stderr[-2000:]
    report = read.stdout.strip().splitlines()[-1]
    assert report == '{"float16": ["float16", true], "bfloat16_bits": ["uint16", true]}'
