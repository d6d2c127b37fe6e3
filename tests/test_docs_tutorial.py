"""docs/tutorial.md runs as written: its code blocks, in order, in an empty directory, with the conventions of
:mod:`tests.docs_blocks` (checked, so nothing is skipped silently).

The tutorial's own assertions (the A/B check of direct against SONIC) must pass; the SONIC run must really
have started the local fallback server, and no process of the tutorial's (the server, its stubs) may outlive
its command.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from framework.server import bundled_server_available
from tests.docs_blocks import (
    REPO_ROOT,
    Block,
    assert_nothing_left,
    check_conventions,
    output_of,
    page_blocks,
    page_env,
    run_page,
)

TUTORIAL = REPO_ROOT / "docs" / "tutorial.md"
README = REPO_ROOT / "README.md"

SERVER_OK, SERVER_REASON = bundled_server_available()
SERVER_READY = re.compile(r"local Triton server pid (\d+) ready")


def tutorial_blocks() -> list[Block]:
    return page_blocks(TUTORIAL)


def digest(path: Path) -> str | None:
    return hashlib.md5(path.read_bytes()).hexdigest() if path.is_file() else None


def test_tutorial_follows_its_conventions_and_is_linked():
    blocks = tutorial_blocks()
    check_conventions(blocks)
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
    env = page_env(marker)
    model = tmp_path / "models" / "jetmlp" / "1" / "model.onnx"

    def after(block: Block, result: subprocess.CompletedProcess, before: str | None) -> None:
        if "export-model" in block.text:  # the tutorial says: the same, byte-identical files
            assert before is not None and digest(model) == before, "export-model did not rewrite the same model"

    outputs = run_page(blocks, tmp_path, env, marker, before_bash=lambda b: digest(model), after_bash=after)

    assert (tmp_path / "models" / "jetmlp" / "config.pbtxt").is_file() and model.is_file()
    sonic = output_of(outputs, "sonic=1")
    assert SERVER_READY.search(sonic.stderr), f"the SONIC run started no local Triton server:\n{sonic.stderr}"
    ab = output_of(outputs, "check_ab.py")
    assert re.search(r"100 events, \d+ jets: max \|direct - SONIC\| = ", ab.stdout), ab.stdout
    compare = output_of(outputs, "framework compare")
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
