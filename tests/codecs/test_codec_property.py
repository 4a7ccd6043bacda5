"""Property: any bit pattern of any supported dtype and shape round-trips bit-exactly."""

from __future__ import annotations

import numpy as np
from codec_helpers import BITS, VALUE_DTYPES, assert_same_bits
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from latentzarr_codecs import LatentPCodec

DTYPE_NAMES = st.sampled_from(list(VALUE_DTYPES))
SHAPES = hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=24)


@st.composite
def bit_arrays(draw: st.DrawFn) -> tuple[str, np.ndarray]:
    name = draw(DTYPE_NAMES)
    width = np.dtype(BITS[name])
    shape = draw(SHAPES)
    # Mix fully random bits with a few repeated values, so both high- and low-entropy chunks appear.
    elements = st.one_of(
        st.integers(0, np.iinfo(width).max), st.sampled_from([0, 1, np.iinfo(width).max, 1 << (width.itemsize * 8 - 1)])
    )
    raw = draw(hnp.arrays(width, shape, elements=elements))
    order = draw(st.sampled_from(["C", "F"]))
    return name, np.asarray(raw.view(VALUE_DTYPES[name]), order=order)


@settings(max_examples=150, deadline=None)
@given(case=bit_arrays(), level=st.integers(0, 9), typed=st.booleans())
def test_any_bits_roundtrip(case: tuple[str, np.ndarray], level: int, typed: bool) -> None:
    name, array = case
    codec = LatentPCodec(dtype=name if typed else None, level=level)
    encoded = codec.encode(array)
    decoded = codec.decode(encoded)
    assert decoded.dtype == array.dtype
    assert_same_bits(decoded, array)
