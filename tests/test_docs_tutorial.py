"""docs/tutorial.md runs as written: its code blocks, in order, in an empty directory.

Conventions of the page (checked here, so nothing is skipped silently):

* a ``python`` block whose first line is ``# file: PATH`` is a file: it is written to PATH (relative, inside the
  directory) with the block's exact content;
* a ``bash`` block is run with ``bash -e -o pipefail`` in that directory, the venv's ``bin`` first on ``PATH`` and
  the repository on ``PYTHONPATH``; a non-zero exit fails the test with the block's output;
* a ``text`` block is an illustration (a directory listing) and is not run;
* any other block is an error.

The tutorial's own assertions (the A/B check of direct against SONIC) must pass; the SONIC run must really
have started the local fallback server, and no process of the tutorial's (the server, its stubs) may outlive
its command.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from framework.server import bundled_server_available

REPO_ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = REPO_ROOT / "docs" / "tutorial.md"
README = REPO_ROOT / "README.md"

SERVER_OK, SERVER_REASON = bundled_server_available()
FENCE = re.compile(r"^```([\w-]*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
FILE_LINE = re.compile(r"# file: (\S+)\n")
SERVER_READY = re.compile(r"local Triton server pid (\d+) ready")
MARKER = "CMSFW_TUTORIAL_TEST"
BLOCK_TIMEOUT = 300


@dataclass
class Block:
    lang: str
    text: str
    line: int  # of the opening fence in the markdown

    @property
    def file(self) -> str | None:
        m = FILE_LINE.match(self.text)
        return m.group(1) if m else None

    def describe(self) -> str:
        return f"docs/tutorial.md line {self.line} ({self.lang} block)"


def tutorial_blocks() -> list[Block]:
    """The fenced code blocks of the tutorial, in order."""
    text = TUTORIAL.read_text()
    return [Block(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]


def check_conventions(blocks: list[Block]) -> None:
    """Every block is a file, a command or an illustration, as the module docstring says."""
    for b in blocks:
        if b.lang == "python":
            assert b.file, f"{b.describe()}: a python block must start with '# file: PATH'"
            path = Path(b.file)
            assert not path.is_absolute() and ".." not in path.parts, f"{b.describe()}: {b.file} leaves the directory"
        else:
            assert b.lang in ("bash", "text"), f"{b.describe()}: unknown block type {b.lang!r} (python, bash or text)"


def tutorial_env(marker: str) -> dict[str, str]:
    """The venv first on PATH, the repository importable, and a marker every process of the tutorial inherits."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
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


def digest(path: Path) -> str | None:
    return hashlib.md5(path.read_bytes()).hexdigest() if path.is_file() else None


def test_tutorial_follows_its_conventions_and_is_linked():
    blocks = tutorial_blocks()
    check_conventions(blocks)
    files = [b.file for b in blocks if b.lang == "python"]
    assert len(files) == len(set(files)), f"a file is written twice: {files}"
    for b in blocks:
        if b.lang == "python":
            compile(b.text, b.file, "exec")  # a syntax error fails here, before the slow run
    commands = "\n".join(b.text for b in blocks if b.lang == "bash")
    for needed in ("export-model", "sonic=1", "check_ab.py", "compare"):
        assert needed in commands, f"the tutorial no longer runs {needed!r}"
    assert "](docs/tutorial.md)" in README.read_text(), "README.md does not link docs/tutorial.md"


@pytest.mark.slow
@pytest.mark.triton
@pytest.mark.skipif(not SERVER_OK, reason=SERVER_REASON)
def test_tutorial_runs_as_written(tmp_path):
    blocks = tutorial_blocks()
    check_conventions(blocks)
    marker = uuid.uuid4().hex
    env = tutorial_env(marker)
    model = tmp_path / "models" / "jetmlp" / "1" / "model.onnx"
    outputs: list[tuple[Block, subprocess.CompletedProcess]] = []
    for b in blocks:
        if b.lang == "python":
            path = tmp_path / b.file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(b.text)
        elif b.lang == "bash":
            before = digest(model)
            result = run_bash(b, tmp_path, env)
            outputs.append((b, result))
            assert_nothing_left(marker, b)
            if "export-model" in b.text:  # the tutorial says: the same, byte-identical files
                assert before is not None and digest(model) == before, "export-model did not rewrite the same model"

    def output_of(command: str) -> subprocess.CompletedProcess:
        found = [r for b, r in outputs if command in b.text]
        assert found, f"no block runs {command!r}"
        return found[0]

    assert (tmp_path / "models" / "jetmlp" / "config.pbtxt").is_file() and model.is_file()
    sonic = output_of("sonic=1")
    assert SERVER_READY.search(sonic.stderr), f"the SONIC run started no local Triton server:\n{sonic.stderr}"
    ab = output_of("check_ab.py")
    assert re.search(r"100 events, \d+ jets: max \|direct - SONIC\| = ", ab.stdout), ab.stdout
    compare = output_of("framework compare")
    assert "**Result: AGREE**" in compare.stdout and SERVER_READY.search(compare.stderr), compare.stdout
    assert (tmp_path / "compare" / "jetMLPTags_probb.png").is_file()

    # what the page says in passing: `help` lists the config's option, `dump sonic=1` shows the swap
    for args, expected in ((["help"], ["sonic"]), (["sonic=1"], ["JetMLPSonicProducer", "TritonService"])):
        command = "dump" if args != ["help"] else "run"
        result = subprocess.run([sys.executable, "-m", "framework", command, "jetmlp_cfg.py", *args], cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=120)
        text = result.stdout + result.stderr
        assert result.returncode == 0 and all(e in text for e in expected), (args, result.returncode, text[-3000:])
    assert_nothing_left(marker, blocks[-1])
