"""Precision modes for stored latents (lossless by default, or a bounded loss for fewer bytes) and the fidelity
evaluator that measures what each mode costs in pixels, next to lossy image codecs at equal bytes.

Modes are text (``"lossless"``, ``"bitround:7"``, ``"q8"``, ``"step:0.04"``, ``"wstep:0.06"``); see
:mod:`latentzarr.precision.modes` for their error bounds. Lossy modes store through the ``latentzarr.lossy``
codec (lossy transform, then our lossless pcodec engine), so a Zarr array written in one says so in its metadata.
The evaluator (:mod:`latentzarr.precision.fidelity`) imports pandas and scikit-image; the modes do not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from latentzarr._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "KINDS": "latentzarr.precision.modes",
    "PrecisionMode": "latentzarr.precision.modes",
    "parse_mode": "latentzarr.precision.modes",
    "EncodedLatents": "latentzarr.precision.storage",
    "decode_latents": "latentzarr.precision.storage",
    "encode_latents": "latentzarr.precision.storage",
    "resolve_mode": "latentzarr.precision.storage",
    "roundtrip": "latentzarr.precision.storage",
    "channel_sensitivity": "latentzarr.precision.sensitivity",
    "cached_channel_sensitivity": "latentzarr.precision.sensitivity",
    "FidelityResult": "latentzarr.precision.fidelity",
    "best_reduction": "latentzarr.precision.fidelity",
    "equal_bytes_gain": "latentzarr.precision.fidelity",
    "evaluate_fidelity": "latentzarr.precision.fidelity",
    "plot_rate_distortion": "latentzarr.precision.fidelity",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from latentzarr.precision.fidelity import (  # noqa: F401
        FidelityResult,
        best_reduction,
        equal_bytes_gain,
        evaluate_fidelity,
        plot_rate_distortion,
    )
    from latentzarr.precision.modes import KINDS, PrecisionMode, parse_mode  # noqa: F401
    from latentzarr.precision.sensitivity import cached_channel_sensitivity, channel_sensitivity  # noqa: F401
    from latentzarr.precision.storage import (  # noqa: F401
        EncodedLatents,
        decode_latents,
        encode_latents,
        resolve_mode,
        roundtrip,
    )
