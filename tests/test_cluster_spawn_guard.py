"""A local cluster started at a script's unguarded top level fails at once with one line saying what to do."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "codecs"),
                                                        os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(script)], cwd=script.parent, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_unguarded_start_cluster_fails_at_once_naming_the_guard(tmp_path: Path) -> None:
    script = tmp_path / "serve_it.py"
    script.write_text(textwrap.dedent("""
        import latentzarr as lz

        with lz.start_cluster("latents.zarr", n_workers=1) as reader:
            print("started")
    """))
    try:
        proc = _run(script)
    except subprocess.TimeoutExpired:  # what happened before: workers re-ran the script, restarted, forever
        pytest.fail("a script starting a cluster at its top level hung")
    assert proc.returncode == 1 and "started" not in proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("latentzarr.errors.SpawnedImportError: Expected the cluster to start under "
                           '`if __name__ == "__main__":`')
    assert f"{script.resolve()}:4" in last
    assert "bootstrapping phase" not in proc.stderr  # no worker was started at all


def test_guarded_and_function_calls(tmp_path: Path) -> None:
    """Under the guard (also through a function it calls) passes; a function called unguarded is refused."""
    script = tmp_path / "guarded.py"
    script.write_text(textwrap.dedent("""
        from latentzarr.cluster.spawn_guard import refuse_unguarded_start


        def main():
            refuse_unguarded_start()


        if __name__ == "__main__":
            main()
            print("guarded ok")
    """))
    proc = _run(script)
    assert proc.returncode == 0 and "guarded ok" in proc.stdout, proc.stderr
    script.write_text(script.read_text().replace('if __name__ == "__main__":\n    main()', "main()\nif 1:"))
    proc = _run(script)
    assert proc.returncode == 1 and f"{script.resolve()}:9 instead" in proc.stderr, proc.stderr


def test_a_spawned_child_importing_the_script_is_refused(tmp_path: Path) -> None:
    """The second line of defence: in a spawned child's import of the main script, the check fails at once."""
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent("""
        import multiprocessing as mp

        from latentzarr.cluster.spawn_guard import refuse_unguarded_start

        if __name__ != "__main__":  # only while a spawned child imports this script (as __mp_main__)
            refuse_unguarded_start()


        def work():
            pass


        if __name__ == "__main__":
            p = mp.get_context("spawn").Process(target=work)
            p.start()
            p.join()
            print("child exit", p.exitcode)
    """))
    proc = _run(script)
    assert "child exit 1" in proc.stdout, proc.stderr
    assert "Got it started while a worker process imported the script instead" in proc.stderr
