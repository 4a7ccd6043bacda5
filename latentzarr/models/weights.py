"""Where model weights live, and fetching the known ones once.

The models folder is ``$LATENTZARR_MODELS`` when set, else ``platformdirs.user_cache_dir("latentzarr")/models``.
A model named ``<name>`` is the folder ``<models>/<name>/`` holding ``<name>_encoder.pth`` (optional for
decode-only use) and ``<name>_decoder.pth``.

Weights listed in :data:`KNOWN_WEIGHTS` (taef2) are downloaded on first use from their public source with
``torch.hub.download_url_to_file`` and checked against a pinned sha256; a file that fails the check is never
kept. When offline, or when the check fails, :class:`~latentzarr.errors.ModelNotFoundError` says how to
provide the files by hand (set ``LATENTZARR_MODELS``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from latentzarr.errors import ModelNotFoundError

__all__ = [
    "ENV_VAR",
    "KNOWN_WEIGHTS",
    "WeightFile",
    "ensure_weights",
    "models_dir",
    "sha256_file",
    "weight_path",
]

ENV_VAR = "LATENTZARR_MODELS"
"""Environment variable naming the models folder."""

_TAESD_RAW = "https://raw.githubusercontent.com/madebyollin/taesd/main"


@dataclass(frozen=True)
class WeightFile:
    """One downloadable weights file: where it comes from and its sha256 (hex)."""

    url: str
    sha256: str


KNOWN_WEIGHTS: dict[str, dict[str, WeightFile]] = {
    "taef2": {
        "encoder": WeightFile(
            f"{_TAESD_RAW}/taef2_encoder.pth",
            "10a4e1021e89d7551eaf161352da8dbd0b1aa83872ae28b150c1df1ce2f147b6",
        ),
        "decoder": WeightFile(
            f"{_TAESD_RAW}/taef2_decoder.pth",
            "0a44a31e1ae59eb9dbf9359d24942fd3ef5928162c1800d97a28c61d51be0ab5",
        ),
    },
}
"""Models that can be fetched on first use: name -> part ("encoder"/"decoder") -> source and checksum."""

_PARTS = ("encoder", "decoder")


def models_dir() -> Path:
    """The models folder (it may not exist yet)."""
    value = os.environ.get(ENV_VAR)
    if value:
        return Path(value).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("latentzarr")) / "models"


def weight_path(name: str, part: str, root: str | os.PathLike[str] | None = None) -> Path:
    """``<root>/<name>/<name>_<part>.pth`` with ``root`` defaulting to :func:`models_dir`."""
    if part not in _PARTS:
        raise ValueError(f"Expected a weights part in {_PARTS}. Got {part!r} instead.")
    base = Path(root) if root is not None else models_dir()
    return base / name / f"{name}_{part}.pth"


def sha256_file(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> str:
    """sha256 hex digest of a file's bytes, read ``chunk_bytes`` at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            h.update(block)
    return h.hexdigest()


def _download(url: str, dst: Path, sha256: str) -> None:
    """Fetch ``url`` to ``dst`` (atomically) if its sha256 matches; the torch-hub way."""
    from torch.hub import download_url_to_file

    # download_url_to_file writes to a temporary file next to dst and moves it into place only when the
    # hash prefix matches; a mismatch raises RuntimeError and leaves nothing behind.
    download_url_to_file(url, str(dst), hash_prefix=sha256, progress=False)


def ensure_weights(name: str, part: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Return the path of ``name``'s ``part`` weights, downloading known weights on first use.

    Raises
    ------
    ModelNotFoundError
        The file is missing and ``name`` is not a known model, or the download failed (offline, HTTP error)
        or gave a file whose sha256 differs from the pinned one.
    """
    path = weight_path(name, part, root)
    if path.is_file():
        return path
    source = KNOWN_WEIGHTS.get(name, {}).get(part)
    how = f"Put {path.name} in {path.parent} (or set {ENV_VAR} to a folder holding {name}/{path.name})."
    if source is None:
        raise ModelNotFoundError(
            f"Expected the {part} weights of model {name!r} at {str(path)!r}. Got no such file instead, and "
            f"{name!r} is not a model latentzarr can download ({sorted(KNOWN_WEIGHTS)}). {how}"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _download(source.url, path, source.sha256)
    except RuntimeError as exc:  # torch.hub's hash mismatch
        raise ModelNotFoundError(
            f"Expected {source.url} to have sha256 {source.sha256}. Got a different file instead ({exc}); "
            f"it was not kept. {how}"
        ) from exc
    except OSError as exc:  # URLError/HTTPError are OSErrors; so are permission problems
        raise ModelNotFoundError(
            f"Expected to download the {part} weights of {name!r} from {source.url}. Got {exc!r} instead "
            f"(offline?). {how}"
        ) from exc
    if not path.is_file():  # pragma: no cover - download_url_to_file either writes the file or raises
        raise ModelNotFoundError(f"Expected {str(path)!r} after downloading {source.url}. {how}")
    return path
