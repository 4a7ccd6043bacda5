"""The models folder and the checked first-use download, without touching the network."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from latentzarr.errors import ModelNotFoundError
from latentzarr.models import KNOWN_WEIGHTS, ensure_weights, load_model, models_dir, sha256_file
from latentzarr.models import weights as weights_module
from latentzarr.models.weights import WeightFile

REAL = KNOWN_WEIGHTS["taef2"]


def _point_taef2_at(monkeypatch, urls: dict[str, str], sha: dict[str, str] | None = None) -> None:
    entry = {part: WeightFile(url, (sha or {}).get(part, REAL[part].sha256)) for part, url in urls.items()}
    monkeypatch.setitem(KNOWN_WEIGHTS, "taef2", entry)


def test_pinned_checksums_match_the_shared_files(models_dir):
    for part in ("encoder", "decoder"):
        assert sha256_file(models_dir / "taef2" / f"taef2_{part}.pth") == REAL[part].sha256
        assert REAL[part].url.startswith("https://raw.githubusercontent.com/madebyollin/taesd/")


def test_models_dir_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("LATENTZARR_MODELS", str(tmp_path))
    assert models_dir() == tmp_path
    monkeypatch.delenv("LATENTZARR_MODELS")
    default = models_dir()
    assert default.name == "models" and "latentzarr" in str(default)


def test_present_file_is_used_without_download(monkeypatch, models_dir):
    def no_download(*args, **kwargs):
        raise AssertionError("must not download a file that is present")

    monkeypatch.setattr(weights_module, "_download", no_download)
    assert ensure_weights("taef2", "decoder", models_dir) == models_dir / "taef2" / "taef2_decoder.pth"


def test_offline_raises_model_not_found(monkeypatch, tmp_path):
    monkeypatch.setenv("LATENTZARR_MODELS", str(tmp_path))
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)  # a proxy must not see (or answer for) the loopback URL
    # port 1 on the loopback interface: the connection is refused at once, nothing leaves the machine
    _point_taef2_at(monkeypatch, {p: f"http://127.0.0.1:1/taef2_{p}.pth" for p in ("encoder", "decoder")})
    with pytest.raises(ModelNotFoundError, match="LATENTZARR_MODELS") as info:
        load_model("taef2", device="cpu")
    assert "offline" in str(info.value)
    assert list((tmp_path / "taef2").iterdir()) == []


def test_download_error_is_reported_with_what_to_do(monkeypatch, tmp_path):
    from urllib.error import URLError

    def offline(url, dst, sha256):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(weights_module, "_download", offline)
    with pytest.raises(ModelNotFoundError, match="name resolution") as info:
        ensure_weights("taef2", "decoder", tmp_path)
    assert "LATENTZARR_MODELS" in str(info.value) and REAL["decoder"].url in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_checksum_mismatch_keeps_nothing(monkeypatch, tmp_path):
    bogus = tmp_path / "served" / "taef2_decoder.pth"
    bogus.parent.mkdir()
    bogus.write_bytes(b"not the weights")
    target = tmp_path / "models"
    _point_taef2_at(monkeypatch, {"decoder": bogus.as_uri()})
    with pytest.raises(ModelNotFoundError, match="sha256") as info:
        ensure_weights("taef2", "decoder", target)
    assert "LATENTZARR_MODELS" in str(info.value)
    assert list((target / "taef2").iterdir()) == []  # no file, no partial download


def test_first_use_download_then_cached(monkeypatch, tmp_path, models_dir):
    """The whole fetch path with file:// URLs to the real weights: decoder at load, encoder at first encode."""
    served = tmp_path / "served"
    shutil.copytree(models_dir / "taef2", served)
    target = tmp_path / "models"
    monkeypatch.setenv("LATENTZARR_MODELS", str(target))
    _point_taef2_at(monkeypatch, {p: (served / f"taef2_{p}.pth").as_uri() for p in ("encoder", "decoder")})
    model = load_model("taef2", device="cpu")
    folder = target / "taef2"
    assert sorted(p.name for p in folder.iterdir()) == ["taef2_decoder.pth"]
    assert sha256_file(folder / "taef2_decoder.pth") == REAL["decoder"].sha256
    model.encode(np.zeros((1, 8, 8, 3), np.uint8))
    assert sorted(p.name for p in folder.iterdir()) == ["taef2_decoder.pth", "taef2_encoder.pth"]
    # once cached, the source may disappear
    shutil.rmtree(served)
    assert load_model("taef2", device="cpu").fingerprint()["weights_sha256"] == REAL["decoder"].sha256


def test_unknown_part_rejected(tmp_path):
    with pytest.raises(ValueError, match="weights part"):
        ensure_weights("taef2", "vae", tmp_path)


def test_unknown_model_name_not_downloaded(tmp_path):
    with pytest.raises(ModelNotFoundError, match="not a model latentzarr can download"):
        ensure_weights("other", "decoder", tmp_path)
    assert not Path(tmp_path / "other").exists()
