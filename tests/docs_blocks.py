"""Running the code blocks of a documentation page as written: the conventions the pages follow (checked, so that
nothing is skipped silently), shared by ``test_docs_tutorial.py`` and ``test_docs_pages.py``.

* a block whose first line is ``# file: PATH`` is a file: it is written to PATH (relative, inside the directory)
  with the block's exact content; a ``python`` one must compile;
* a ``bash`` block is run with ``bash -e -o pipefail`` in that directory, the environment's ``bin`` first on
  ``PATH`` and the repository on ``PYTHONPATH``; a non-zero exit fails the test with the block's output;
* a ``text`` block is an illustration (a listing, a result) and is not run;
* any other block is an error.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```([\w-]*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
FILE_LINE = re.compile(r"# file: (\S+)\n")
MARKER = "CMSFW_TUTORIAL_TEST"
BLOCK_TIMEOUT = 300


@dataclass
class Block:
    page: str
    lang: str
    text: str
    line: int  # of the opening fence in the markdown

    @property
    def file(self) -> str | None:
        m = FILE_LINE.match(self.text)
        return m.group(1) if m else None

    def describe(self) -> str:
        return f"{self.page} line {self.line} ({self.lang} block)"


def page_blocks(page: Path) -> list[Block]:
    """The fenced code blocks of *page*, in order."""
    text = page.read_text()
    name = str(page.relative_to(REPO_ROOT)) if page.is_relative_to(REPO_ROOT) else str(page)
    return [Block(name, m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]


def check_conventions(blocks: list[Block]) -> None:
    """Every block is a file, a command or an illustration, as the module docstring says; files compile."""
    for b in blocks:
        if b.file:
            path = Path(b.file)
            assert not path.is_absolute() and ".." not in path.parts, f"{b.describe()}: {b.file} leaves the directory"
            if path.suffix == ".py":
                compile(b.text, b.file, "exec")  # a syntax error fails here, before the slow run
        else:
            assert b.lang in ("bash", "text"), (
                f"{b.describe()}: a {b.lang or 'plain'} block must start with '# file: PATH', or be bash or text")
    files = [b.file for b in blocks if b.file]
    assert len(files) == len(set(files)), f"a file is written twice: {files}"


def page_env(marker: str, bin_dir: Path | None = None) -> dict[str, str]:
    """The environment's ``bin`` first on PATH, the repository importable, and a marker every process inherits."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(bin_dir or Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env[MARKER] = marker
    return env


def processes_with(marker: str) -> list[str]:
    """``pid: command`` of the live processes whose environment holds ``MARKER=marker``."""
    needle = f"{MARKER}={marker}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(f"{proc.name}: {cmd[:200]}")
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def assert_nothing_left(marker: str, after: Block) -> None:
    deadline = time.monotonic() + 10
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"processes of {after.describe()} outlived it:\n" + "\n".join(left)


def run_bash(block: Block, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block.text], cwd=cwd, env=env,
                                capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{block.describe()} ran over {BLOCK_TIMEOUT} s:\n{block.text}\nstderr:\n{e.stderr}", pytrace=False)
    if result.returncode != 0:
        pytest.fail(f"{block.describe()} failed (exit {result.returncode}):\n{block.text}\n"
                    f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-5000:]}", pytrace=False)
    return result


def run_page(blocks: list[Block], cwd: Path, env: dict[str, str], marker: str, before_bash=None, after_bash=None
             ) -> list[tuple[Block, subprocess.CompletedProcess]]:
    """Write the files and run the commands of *blocks* in order in *cwd*; after each command no process of it
    may be left. *before_bash* / *after_bash*: called with each bash block (and its result) for page-specific
    checks. Returns each command block with its result."""
    outputs = []
    for b in blocks:
        if b.file:
            path = cwd / b.file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(b.text)
        elif b.lang == "bash":
            state = before_bash(b) if before_bash else None
            result = run_bash(b, cwd, env)
            outputs.append((b, result))
            assert_nothing_left(marker, b)
            if after_bash:
                after_bash(b, result, state)
    return outputs


def output_of(outputs: list[tuple[Block, subprocess.CompletedProcess]], command: str) -> subprocess.CompletedProcess:
    found = [r for b, r in outputs if command in b.text]
    assert found, f"no block runs {command!r}"
    return found[0]
