"""Precision modes for stored latents: what is kept of each value, as text and as configuration.

Text forms (case-insensitive, surrounding blanks ignored):

``lossless``
    The default: every bit is kept (codec ``latentzarr.latent``). Always available.
``bitround:K``
    Keep K mantissa bits of each value (numcodecs' ``BitRound``; K <= 10 for float16, 7 for bfloat16, 23 for
    float32). Relative error at most ``2**-(K+1)``.
``qB`` (``q8``, ``q10``, 1 <= B <= 16)
    Per-channel affine B-bit quantisation: each image's channel keeps its min as offset and
    ``(max - min) / (2**B - 1)`` as scale (stored in the chunk). Error at most ``scale / 2`` per channel.
``step:D``
    Uniform quantisation with absolute step D (> 0) for every value: error at most ``D / 2``, known in advance.
``wstep:D``
    Sensitivity-weighted steps: channel c gets ``D * sqrt(G / g_c)``, where ``g_c`` is the decoder's pixel
    sensitivity to noise in channel c and G the geometric mean of the ``g_c`` (so the steps' geometric mean is
    D and the rate is close to ``step:D``'s). Error at most half the channel's step. The text alone does not fix
    the steps: a mode parsed from ``wstep:D`` must get the model's sensitivities (see
    :func:`latentzarr.precision.resolve_mode`) before it can encode; its configuration then holds the steps.

Every lossy mode runs a lossy transform, then the same lossless pcodec engine (``latentzarr.latent``) as the
entropy stage, through the ``latentzarr.lossy`` codec; see :mod:`latentzarr_codecs.lossy` for the chunk format.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from latentzarr_codecs import LatentCodec, LatentPCodec, LossyCodec, LossyPCodec

__all__ = ["KINDS", "PRECISION_CONFIG_VERSION", "PrecisionMode", "parse_mode"]

KINDS: tuple[str, ...] = ("lossless", "bitround", "q", "step", "wstep")
"""Mode kinds, in the order of increasing departure from the stored values (roughly)."""
PRECISION_CONFIG_VERSION = 1
_FORMS = "'lossless', 'bitround:K' (K mantissa bits), 'qB' (B bits, 1-16, e.g. 'q8'), 'step:D' or 'wstep:D' (D > 0)"
_TEXT = re.compile(r"^(?:(lossless)|bitround:(\d+)|q(\d+)|(w?step):([0-9.eE+-]+))$")


@dataclass(frozen=True)
class PrecisionMode:
    """A validated precision mode; build it with :func:`parse_mode` (or :meth:`from_config`).

    Attributes
    ----------
    kind
        One of :data:`KINDS`.
    bits
        Mantissa bits kept (``bitround``) or code bits (``q``); ``None`` otherwise.
    step
        The step D of ``step`` / ``wstep``; ``None`` otherwise.
    steps
        Per-channel steps of a resolved ``wstep`` mode; ``None`` otherwise (and for an unresolved ``wstep``).
    """

    kind: str = "lossless"
    bits: int | None = None
    step: float | None = None
    steps: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Expected a precision mode kind in {KINDS}. Got {self.kind!r} instead.")
        if self.kind == "bitround" and not (_is_int(self.bits) and 0 <= self.bits <= 23):
            raise ValueError(f"Expected bitround bits from 0 to 23. Got {self.bits!r} instead.")
        if self.kind == "q" and not (_is_int(self.bits) and 1 <= self.bits <= 16):
            raise ValueError(f"Expected q bits from 1 to 16 (e.g. 'q8'). Got {self.bits!r} instead.")
        if self.kind in ("step", "wstep") and not _positive(self.step):
            raise ValueError(f"Expected a positive finite step. Got {self.step!r} instead.")
        if self.steps is not None and (self.kind != "wstep" or not self.steps or not all(map(_positive, self.steps))):
            raise ValueError(
                f"Expected per-channel steps only for a wstep mode, all positive. Got {self.steps!r} for {self.kind}."
            )

    @property
    def name(self) -> str:
        """The canonical text form, e.g. ``"q8"``, ``"bitround:7"``, ``"step:0.04"``; parses back to this mode
        (less the per-channel steps of a resolved ``wstep``)."""
        if self.kind == "lossless":
            return "lossless"
        if self.kind == "bitround":
            return f"bitround:{self.bits}"
        if self.kind == "q":
            return f"q{self.bits}"
        return f"{self.kind}:{self.step!r}"

    @property
    def lossy(self) -> bool:
        """True for every mode but ``lossless``."""
        return self.kind != "lossless"

    @property
    def resolved(self) -> bool:
        """False only for a ``wstep`` mode still waiting for its per-channel steps."""
        return self.kind != "wstep" or self.steps is not None

    def __str__(self) -> str:
        return self.name

    def with_sensitivity(self, sensitivity: Any) -> PrecisionMode:
        """This ``wstep`` mode with steps ``D * sqrt(G / g_c)`` for channel sensitivities ``g_c`` (positive)."""
        if self.kind != "wstep":
            raise ValueError(f"Expected a wstep mode to take channel sensitivities. Got {self.name!r} instead.")
        gains = [float(g) for g in sensitivity]
        if not gains or not all(_positive(g) for g in gains):
            raise ValueError(f"Expected positive finite channel sensitivities. Got {sensitivity!r} instead.")
        geo = math.exp(sum(math.log(g) for g in gains) / len(gains))
        assert self.step is not None
        return PrecisionMode("wstep", step=self.step, steps=tuple(self.step * math.sqrt(geo / g) for g in gains))

    # ------------------------------------------------------------------ configuration
    def to_config(self) -> dict[str, Any]:
        """JSON-able configuration, e.g. ``{"version": 1, "mode": "q8", "lossy": True}`` (plus ``steps`` for a
        resolved ``wstep``). Record it in an array's attributes; :meth:`from_config` reads it back."""
        config: dict[str, Any] = {"version": PRECISION_CONFIG_VERSION, "mode": self.name, "lossy": self.lossy}
        if self.steps is not None:
            config["steps"] = list(self.steps)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PrecisionMode:
        """Inverse of :meth:`to_config`; raises ``ValueError`` on unknown keys or versions."""
        if not isinstance(config, dict):
            raise ValueError(f"Expected a precision configuration dict. Got {config!r} instead.")
        unknown = sorted(set(config) - {"version", "mode", "lossy", "steps"})
        if unknown:
            raise ValueError(f"Expected precision configuration keys version, mode, lossy, steps. Got {unknown!r}.")
        version = config.get("version", PRECISION_CONFIG_VERSION)
        if version != PRECISION_CONFIG_VERSION:
            raise ValueError(
                f"Expected precision configuration version {PRECISION_CONFIG_VERSION}. Got {version!r} instead; "
                "upgrade latentzarr."
            )
        mode = parse_mode(config.get("mode"))
        if "lossy" in config and config["lossy"] is not mode.lossy:
            raise ValueError(f"Expected lossy={mode.lossy} for mode {mode.name!r}. Got {config['lossy']!r} instead.")
        steps = config.get("steps")
        return mode if steps is None else cls(mode.kind, step=mode.step, steps=tuple(float(s) for s in steps))

    # ------------------------------------------------------------------ codecs
    @classmethod
    def from_serializer(cls, codec: dict[str, Any]) -> PrecisionMode:
        """The mode of an array from its serializer's Zarr metadata (``{"name": ..., "configuration": ...}``).

        ``latentzarr.latent`` is ``lossless``; ``latentzarr.lossy`` gives its scheme back (several steps: a
        resolved ``wstep`` whose D is their geometric mean). Any other serializer raises ``ValueError``.
        """
        name = codec.get("name") if isinstance(codec, dict) else None
        if name == "latentzarr.latent":
            return cls()
        if name != "latentzarr.lossy":
            raise ValueError(
                f"Expected a latentzarr.latent or latentzarr.lossy serializer. Got {codec!r} instead: not an array "
                "written by latentzarr."
            )
        engine = LossyCodec.from_dict(codec)
        if engine.scheme == "bitround":
            return cls("bitround", bits=engine.keepbits)
        if engine.scheme == "affine":
            return cls("q", bits=engine.bits)
        steps = engine.steps or ()
        if len(steps) == 1:
            return cls("step", step=steps[0])
        geo = math.exp(sum(math.log(s) for s in steps) / len(steps))
        return cls("wstep", step=geo, steps=tuple(steps))

    def numcodecs_codec(self, dtype: str | None = None, level: int = 9) -> LatentPCodec | LossyPCodec:
        """The numcodecs codec that stores one chunk in this mode (``dtype``: the value dtype, or None)."""
        if self.kind == "lossless":
            return LatentPCodec(dtype=dtype, level=level)
        return LossyPCodec(**self._lossy_params(), dtype=dtype, level=level)

    def zarr_serializer(self, dtype: str | None = None, level: int = 9) -> LatentCodec | LossyCodec:
        """The Zarr v3 ``serializer=`` for an array in this mode (pass ``compressors=None`` alongside: the
        serializer already entropy-codes). Lossy ``q``/``step``/``wstep`` arrays may be float32 at no cost."""
        if self.kind == "lossless":
            return LatentCodec(dtype=dtype, level=level)
        return LossyCodec(**self._lossy_params(), dtype=dtype, level=level)

    def _lossy_params(self) -> dict[str, Any]:
        if self.kind == "bitround":
            return {"scheme": "bitround", "keepbits": self.bits}
        if self.kind == "q":
            return {"scheme": "affine", "bits": self.bits}
        if self.kind == "step":
            return {"scheme": "step", "steps": [self.step]}
        if self.steps is None:
            raise ValueError(
                f"Expected a resolved wstep mode (per-channel steps). Got {self.name!r} without steps instead; "
                "call latentzarr.precision.resolve_mode(mode, model) first."
            )
        return {"scheme": "step", "steps": list(self.steps)}


def parse_mode(text: str | PrecisionMode) -> PrecisionMode:
    """Parse a mode's text form (see the module docstring); a :class:`PrecisionMode` is returned as is.

    Raises
    ------
    ValueError
        The text is not one of the accepted forms, or its number is out of range.
    """
    if isinstance(text, PrecisionMode):
        return text
    if not isinstance(text, str):
        raise ValueError(f"Expected a precision mode as text ({_FORMS}). Got {text!r} instead.")
    match = _TEXT.match(text.strip().lower())
    if match is None:
        raise ValueError(f"Expected a precision mode: one of {_FORMS}. Got {text!r} instead.")
    lossless, keep, qbits, kind, step = match.groups()
    if lossless:
        return PrecisionMode()
    if keep is not None:
        return PrecisionMode("bitround", bits=int(keep))
    if qbits is not None:
        return PrecisionMode("q", bits=int(qbits))
    try:
        value = float(step)
    except ValueError:
        raise ValueError(f"Expected a number after '{kind}:'. Got {text!r} instead.") from None
    return PrecisionMode(kind, step=value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
