"""Shared fixtures. Trained taef2 weights come from ``LATENTZARR_MODELS`` (default: ../shared/models)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
_DEFAULT_MODELS = REPO.parent / "shared" / "models"
if not os.environ.get("LATENTZARR_MODELS") and _DEFAULT_MODELS.is_dir():
    os.environ["LATENTZARR_MODELS"] = str(_DEFAULT_MODELS)

# Determinism of CPU decodes depends on the thread count (see design.md); tests pin it.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The folder holding ``taef2/taef2_{encoder,decoder}.pth``; skips when absent, except under CI (``$CI`` set),
    where missing weights are an error: a green run must not have skipped most of the suite."""
    path = Path(os.environ.get("LATENTZARR_MODELS", ""))
    if not (path / "taef2" / "taef2_decoder.pth").is_file():
        why = (f"taef2 weights not found in {str(path) or '(LATENTZARR_MODELS unset)'}: set LATENTZARR_MODELS to a "
               "folder holding taef2/")
        if os.environ.get("CI"):
            pytest.fail(f"{why} (CI is set, so this is an error, not a skip)", pytrace=False)
        pytest.skip(why)
    return path


@pytest.fixture(scope="session")
def sample_images_256() -> dict[str, np.ndarray]:
    """Real photos, 256x256 uint8 RGB."""
    from latentzarr.samples import sample_images

    return sample_images(256)


@pytest.fixture(scope="session")
def taef2(models_dir):
    """The trained taef2 autoencoder on CPU."""
    from latentzarr.models import load_model

    return load_model("taef2", device="cpu")


@pytest.fixture(scope="session")
def taef2_latents(taef2, sample_images_256) -> np.ndarray:
    """Real taef2 latents (N, 32, 32, 32) float32 of the 256x256 sample photos."""
    batch = np.stack(list(sample_images_256.values()))
    return taef2.encode(batch, dtype=np.float32)


@pytest.fixture(scope="session")
def taef2_latents_64(taef2) -> np.ndarray:
    """Real taef2 latents (N, 32, 8, 8) float16 of the sample photos at 64x64 (cheap to decode)."""
    from latentzarr.samples import sample_images

    return taef2.encode(np.stack(list(sample_images(64).values())), dtype=np.float16)


def _cuda_reason() -> str | None:
    """None when a CUDA GPU is usable, else why not (the skip reason of ``gpu``-marked tests)."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return "torch is not installed"
    if not torch.cuda.is_available():
        return f"needs a CUDA GPU: torch {torch.__version__} sees none (torch.version.cuda={torch.version.cuda})"
    return None


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` run the real CUDA paths when a GPU is present and are skipped, with the reason, if not."""
    marked = [item for item in items if item.get_closest_marker("gpu")]
    if not marked:
        return
    reason = _cuda_reason()
    if reason:
        for item in marked:
            item.add_marker(pytest.mark.skip(reason=reason))
