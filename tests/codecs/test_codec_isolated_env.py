"""A store written with the codec opens with plain ``zarr.open`` where only zarr, numcodecs, pcodec, numpy and
latentzarr-codecs are installed (no torch, no dask, no latentzarr): a fresh virtual environment without pip that
sees only those distributions and their own requirements, linked from this environment (no network: the tests
never touch it, as the README says)."""

from __future__ import annotations

import os
import shutil
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


def _link_closure(site: Path, roots: tuple[str, ...] = ("numpy", "numcodecs", "pcodec", "zarr")) -> list[str]:
    """Link into ``site`` the installed files of ``roots`` and of what they require (extras aside), plus this
    checkout's ``latentzarr_codecs`` with its installed metadata (entry points); return the distributions."""
    from importlib.metadata import distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    todo, seen = list(roots), []
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.append(name)
        dist = distribution(name)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
        for top in {Path(str(f)).parts[0] for f in dist.files or () if not str(f).startswith("..")}:
            if top.endswith(".pth") or top.startswith("__") or (site / top).exists():
                continue
            source = Path(dist.locate_file(top))
            if source.exists():
                (site / top).symlink_to(source)
    codec = distribution("latentzarr-codecs")
    shutil.copytree(Path(codec.locate_file("")) / f"latentzarr_codecs-{codec.version}.dist-info",
                    site / f"latentzarr_codecs-{codec.version}.dist-info")
    (site / "latentzarr_codecs").symlink_to(CODECS_DIR / "latentzarr_codecs")
    return seen


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
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    linked = _link_closure(site)
    assert not {"torch", "dask", "latentzarr", "ml-dtypes"} & set(linked), linked
    (Path(purelib.stdout.strip()) / "isolated.pth").write_text(f"{site}\n")

    (tmp_path / "reader.py").write_text(READER)
    read = _run([str(python), str(tmp_path / "reader.py"), str(data)], cwd=tmp_path)
    assert read.returncode == 0, read.stderr[-2000:]
    report = read.stdout.strip().splitlines()[-1]
    assert report == '{"float16": ["float16", true], "bfloat16_bits": ["uint16", true]}'
