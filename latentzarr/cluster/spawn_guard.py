"""Refuse to start a local cluster from a script's unguarded top level, instead of hanging.

Dask starts local worker processes with the ``spawn`` method, and a spawned process first re-imports the script
that started it (as ``__mp_main__``). A script that starts a cluster at its top level, outside
``if __name__ == "__main__":``, would start a cluster again in every worker: multiprocessing then prints
``RuntimeError`` tracebacks for each worker, Dask restarts them, and the script never exits.

Two checks, both raising :class:`SpawnedImportError` with a one-line message saying what to do:

* in the script's own process, before any worker starts: the top-level statement being run is found in the
  script's source (``ast``), and must lie inside an ``if __name__ == "__main__":`` block when workers will
  re-import the script (they do for ``python script.py`` and ``python -m package.module``, as multiprocessing
  decides in ``spawn.get_preparation_data``; not in Jupyter, ``python -c`` or ``python -m package``);
* in a spawned child while it imports the script (multiprocessing's own ``_inheriting`` mark, the check its
  ``spawn._check_not_importing_main`` makes), for code the first check cannot read.
"""

from __future__ import annotations

import ast
import inspect
import multiprocessing
import os
import sys

from latentzarr.errors import SpawnedImportError

__all__ = ["SpawnedImportError", "refuse_unguarded_start"]

WHY = ("each worker process re-imports the script, so a cluster started at its top level would start again in "
       "every worker (Jupyter needs nothing).")
GUARD = "Expected the cluster to start under `if __name__ == \"__main__\":` in a script."


def _is_name_main(test: ast.expr) -> bool:
    """``__name__ == "__main__"`` (either order)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    return (any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
            and any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides))


def _reimported_main_file() -> str | None:
    """The file spawned workers will re-run as ``__mp_main__``, or None (mirrors multiprocessing.spawn)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None)
    if name is not None and (name == "__main__" or name.endswith(".__main__")):
        return None  # python -m package: multiprocessing does not re-run it
    path = getattr(main, "__file__", None)
    if not path or os.path.splitext(os.path.basename(path))[0] == "ipython" or not os.path.isfile(path):
        return None
    return os.path.realpath(path)


def _unguarded_line(path: str) -> int | None:
    """The line of ``path``'s top level now running, if it is outside ``if __name__ == "__main__":``."""
    line = None
    frame = inspect.currentframe()
    while frame is not None:
        code = frame.f_code
        if code.co_name == "<module>" and os.path.realpath(code.co_filename) == path:
            line = frame.f_lineno
        frame = frame.f_back
    if line is None:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if (isinstance(node, ast.If) and _is_name_main(node.test) and node.body
                and node.body[0].lineno <= line <= (node.body[-1].end_lineno or line)):
            return None
    return line


def refuse_unguarded_start() -> None:
    """Raise :class:`SpawnedImportError` where starting local worker processes could never finish.

    Called by :func:`latentzarr.cluster.local_cluster` before it starts any process; cheap (reads the script's
    source once). Does nothing unless Dask uses the ``spawn`` start method (its default).
    """
    import dask

    if dask.config.get("distributed.worker.multiprocessing-method", "spawn") != "spawn":
        return
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise SpawnedImportError(f"{GUARD} Got it started while a worker process imported the script instead: "
                                 f"{WHY}")
    path = _reimported_main_file()
    line = _unguarded_line(path) if path else None
    if line is not None:
        raise SpawnedImportError(f"{GUARD} Got it started at the top level of {path}:{line} instead: {WHY}")
