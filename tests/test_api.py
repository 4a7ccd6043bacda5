"""The public API: every name in ``latentzarr.__all__`` resolves, and importing the package stays light."""

from __future__ import annotations

import subprocess
import sys

import latentzarr


def test_every_public_name_resolves():
    for name in latentzarr.__all__:
        assert getattr(latentzarr, name) is not None, name
    assert latentzarr.__version__ != "0.0.0+unknown"


def test_import_does_not_load_torch_or_distributed():
    code = "import sys, latentzarr; print('torch' in sys.modules, 'distributed' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_errors_are_specific_and_catchable_by_builtin_type():
    from latentzarr import errors

    assert issubclass(errors.UnknownIdError, KeyError)
    assert issubclass(errors.InvalidIdError, ValueError)
    assert issubclass(errors.CorruptDataError, OSError)
    assert "'x'" in str(errors.UnknownIdError("x"))
