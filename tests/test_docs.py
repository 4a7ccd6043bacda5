"""The copy-paste examples of docs/*.md run as written, and print what the pages say they print.

Rules (also in docs/README.md):

- A fenced ``python`` or ``bash`` block whose previous non-blank line is ``<!-- test -->`` is run; other blocks
  are illustrations only.
- A page's marked blocks run in page order, in a fresh temporary working folder. Consecutive ``python`` blocks
  form one script, run in one fresh interpreter (state carries over between them, as in a notebook).
  ``bash`` blocks run with ``bash -e``; a line ending in ``&`` starts a background process (a server), which is
  stopped when the page is done.
- A ``text`` block whose previous non-blank line is ``<!-- output -->`` lists lines that the page's standard
  output must contain, in that order; ``...`` inside a line matches anything.
- Pages may name local ports (``8000`` for the HTTP endpoint, ``8786`` for the Dask scheduler, ``9000`` for a
  stand-in object store): the test replaces them with free ports so that runs never collide.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = ("jupyter.md", "training.md", "http-service.md", "operator.md")
PROGRAMS = {"training.md": ("latentzarr",), "http-service.md": ("latentzarr", "curl"),
            "operator.md": ("curl", "dask", "moto_server")}
"""Programs each page's bash blocks run (the page is skipped where one is missing)."""
PORTS = (8000, 8786, 9000)
"""Local ports the pages use; each is replaced by a free port in every block of a page."""
PAGE_TIMEOUT_S = 240
"""Longest a page may run (s); generous for 2 busy cores."""

_FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass
class Block:
    lang: str
    code: str
    line: int  # 1-based line of the opening fence
    mark: str | None  # "test", "output" or None


def parse_blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown page, with the ``<!-- test -->`` / ``<!-- output -->`` mark before it."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    last_nonblank = ""
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            if lines[i].strip():
                last_nonblank = lines[i].strip()
            i += 1
            continue
        start = i
        i += 1
        body = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise ValueError(f"Expected a closing ``` for the block at line {start + 1}. Got the end of the page.")
        mark = {"<!-- test -->": "test", "<!-- output -->": "output"}.get(last_nonblank)
        blocks.append(Block(m.group(1), "\n".join(body) + "\n", start + 1, mark))
        last_nonblank = "```"
        i += 1
    return blocks


def expected_lines(blocks: list[Block]) -> list[str]:
    return [line for b in blocks if b.mark == "output" for line in b.code.splitlines() if line.strip()]


def line_pattern(line: str) -> re.Pattern[str]:
    """``...`` matches anything; the rest literally; surrounding blanks are ignored."""
    return re.compile(".*?".join(re.escape(part) for part in line.strip().split("...")))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _substitute_ports(code: str, ports: dict[int, int]) -> str:
    for old, new in ports.items():
        code = re.sub(rf"(?<![\d.]){old}(?!\.?\d)", str(new), code)
    return code


class PageRun:
    """Runs one page's marked blocks in ``cwd``; keeps every background process it started, to stop them."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.env = env
        self.stdout: list[str] = []
        self.background: list[subprocess.Popen] = []
        self.deadline = time.monotonic() + PAGE_TIMEOUT_S
        self.n = 0

    def _log(self, kind: str) -> tuple[Path, Path]:
        self.n += 1
        return self.cwd / f".doc-{self.n}-{kind}.out", self.cwd / f".doc-{self.n}-{kind}.err"

    def _left(self) -> float:
        return max(1.0, self.deadline - time.monotonic())

    def python(self, code: str, where: str) -> None:
        out, err = self._log("python")
        script = self.cwd / f".doc-{self.n}.py"
        script.write_text(code)
        with out.open("w") as fo, err.open("w") as fe:
            rc = subprocess.run([sys.executable, str(script)], cwd=self.cwd, env=self.env, stdout=fo, stderr=fe,
                                timeout=self._left()).returncode
        self._check(rc, out, err, where)

    def bash(self, code: str, where: str) -> None:
        """Run a bash block: each line ending in ``&`` starts a background process; the lines between them run
        together as one ``bash -e`` script (so shell variables carry over within such a run)."""
        script: list[str] = []
        for raw in code.splitlines():
            line = raw.split(" #", 1)[0].strip()  # a background line may end in a comment
            if line.endswith("&") and not line.startswith("#"):
                self._script(script, where)
                script = []
                self._start(line[:-1].strip())
            else:
                script.append(raw)
        self._script(script, where)

    def _script(self, lines: list[str], where: str) -> None:
        if not any(s.strip() and not s.strip().startswith("#") for s in lines):
            return
        out, err = self._log("bash")
        with out.open("w") as fo, err.open("w") as fe:
            rc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", "\n".join(lines)], cwd=self.cwd,
                                env=self.env, stdout=fo, stderr=fe, timeout=self._left()).returncode
        self._check(rc, out, err, where)

    def _start(self, command: str) -> None:
        out, err = self._log("background")
        with out.open("w") as fo, err.open("w") as fe:  # files, not pipes: a server outlives this call
            self.background.append(subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=self.cwd, env=self.env,
                                                    stdout=fo, stderr=fe, start_new_session=True))

    def _check(self, rc: int, out: Path, err: Path, where: str) -> None:
        text = out.read_text()
        self.stdout.append(text if text.endswith("\n") or not text else text + "\n")
        if rc != 0:
            pytest.fail(f"{where} exited {rc}.\n--- stdout\n{out.read_text()[-3000:]}\n--- stderr\n"
                        f"{err.read_text()[-5000:]}\n{self.background_logs()}")

    def background_logs(self) -> str:
        logs = sorted(self.cwd.glob(".doc-*-background.*"))
        return "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in logs)

    def stop(self) -> None:
        """SIGTERM the process group of each background command this run started (servers and the processes
        they spawned), wait for the command, then SIGKILL whatever is left of its group."""
        for proc in self.background:
            _signal_group(proc.pid, signal.SIGTERM)
        for proc in self.background:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=20)
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is already gone
        os.killpg(pgid, sig)


def run_page(name: str, cwd: Path, env: dict[str, str]) -> str:
    """Run ``name``'s marked blocks in order (``name`` relative to docs/); return the concatenated standard output."""
    blocks = parse_blocks((DOCS / name).read_text())
    ports = {p: free_port() for p in PORTS}
    runner = PageRun(cwd, env)
    pending: list[str] = []
    first_line = 0

    def flush() -> None:
        if pending:
            runner.python("".join(pending), f"{name}: python blocks from line {first_line}")
            pending.clear()

    try:
        for block in blocks:
            if block.mark != "test":
                continue
            code = _substitute_ports(block.code, ports)
            if block.lang == "python":
                if not pending:
                    first_line = block.line
                pending.append(code)
            elif block.lang == "bash":
                flush()
                runner.bash(code, f"{name}: bash block at line {block.line}")
            else:
                raise ValueError(f"{name}:{block.line}: expected a python or bash block to test. Got {block.lang!r}.")
        flush()
    finally:
        runner.stop()
    return "".join(runner.stdout)


def assert_prints(output: str, expected: list[str], page: str) -> None:
    """Every expected line matches a line of ``output``, in order."""
    lines = output.splitlines()
    pos = 0
    for want in expected:
        pattern = line_pattern(want)
        while pos < len(lines) and not pattern.search(lines[pos]):
            pos += 1
        if pos == len(lines):
            pytest.fail(f"{page}: expected a line matching {want!r} (in order). Output was:\n{output[-4000:]}")
        pos += 1


@pytest.fixture
def docs_env(models_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASK_", "AWS_"))}
    # this interpreter's scripts (latentzarr, dask, moto_server, python) first, as in an activated environment
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(LATENTZARR_MODELS=str(models_dir), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"),
               NO_COLOR="1")
    return env


# ------------------------------------------------------------------------------------------------ the parser
def test_parser_marks_and_output_matching() -> None:
    page = "\n".join([
        "text", "<!-- test -->", "", "```python", "print('a')", "```", "```python", "print('not run')", "```",
        "<!-- output -->", "```text", "a ... c", "```",
    ])
    blocks = parse_blocks(page)
    assert [(b.lang, b.mark) for b in blocks] == [("python", "test"), ("python", None), ("text", "output")]
    assert expected_lines(blocks) == ["a ... c"]
    assert line_pattern("a ... c").search("xx a b c") and not line_pattern("a ... c").search("a b")
    assert _substitute_ports("http://127.0.0.1:8000/ --port 8786 18000 8000.5", {8000: 1, 8786: 2}) == \
        "http://127.0.0.1:1/ --port 2 18000 8000.5"
    with pytest.raises(pytest.fail.Exception):
        assert_prints("x\ny", ["y", "x"], "page")  # order matters


@pytest.mark.parametrize("page", PAGES)
def test_page_has_runnable_examples_and_outputs(page: str) -> None:
    blocks = parse_blocks((DOCS / page).read_text())
    assert any(b.mark == "test" for b in blocks), f"{page} has no <!-- test --> block"
    assert expected_lines(blocks), f"{page} has no <!-- output --> block"


def test_index_lists_every_page() -> None:
    index = (DOCS / "README.md").read_text()
    for page in PAGES:
        assert f"]({page})" in index, f"docs/README.md does not link {page}"


# ------------------------------------------------------------------------------------------------ the pages
@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page: str, tmp_path: Path, docs_env: dict[str, str]) -> None:
    for program in PROGRAMS.get(page, ()):
        if shutil.which(program, path=docs_env["PATH"]) is None:
            pytest.skip(f"{page} runs {program!r}, which is not installed")
    if page == "operator.md":
        pytest.importorskip("moto.server")
        pytest.importorskip("s3fs")
    output = run_page(page, tmp_path, docs_env)
    assert_prints(output, expected_lines(parse_blocks((DOCS / page).read_text())), page)


def test_readme_examples_run_as_one_script(tmp_path: Path, docs_env: dict[str, str]) -> None:
    """The README's marked Python snippets (use it from Python, then the cluster) pasted into one script run and
    exit: the cluster one keeps its ``if __name__ == "__main__":`` guard (without it, the script never ends)."""
    readme = "../README.md"
    blocks = [b for b in parse_blocks((DOCS / readme).read_text()) if b.mark == "test"]
    assert any("start_cluster(" in b.code for b in blocks), "README's cluster snippet is no longer tested"
    output = run_page(readme, tmp_path, docs_env)
    assert "'decodes'" in output  # the cluster's stats were printed
