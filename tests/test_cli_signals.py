"""SIGTERM stops a command like Ctrl-C: ``python -m framework run|compare`` in a subprocess, signalled while a slow
analyzer (registered by the test's config) processes the events; and :mod:`framework.signals` in-process."""

from __future__ import annotations

import glob
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from framework import signals
from tests.conftest import REPO_ROOT, SAMPLE_EVENTS
from tests.main_fixtures import needs_server
from tests.onnx_models import pid_alive, process_group


@pytest.fixture(autouse=True)
def sigint_not_inherited_as_ignored():
    """These tests need Ctrl-C to work as in a terminal. A shell without job control starts background commands
    (pytest too) with SIGINT ignored, which the framework rightly keeps; a Python handler here makes the jobs
    this process starts get SIGINT's default again (exec resets caught signals, not ignored ones)."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)

SLOW_ANALYZER = textwrap.dedent(
    """
    import time

    import framework.config as cms
    from framework.core.module import EDAnalyzer
    from framework.core.registry import register

    cms.options.register("marker", "", str, "file that gets one line per analyzed event")
    cms.options.register("delay", 0.1, float, "seconds spent on each event")
    cms.options.register("stallAt", -1, int, "event number on which the analyzer stalls for 120 s")


    @register("SignalTestSlowAnalyzer")
    class SignalTestSlowAnalyzer(EDAnalyzer):
        parameters = {"marker": "", "delay": 0.1, "stallAt": -1}

        def analyze(self, event):
            n = int(event.id.event)
            with open(self.params.marker, "a") as f:
                f.write(f"{n}\\n")
            time.sleep(120 if n == self.params.stallAt else self.params.delay)


    def slow_analyzer():
        o = cms.options
        return cms.EDAnalyzer("SignalTestSlowAnalyzer", marker=o.marker, delay=o.delay, stallAt=o.stallAt)
    """
)

CONFIG = SLOW_ANALYZER + textwrap.dedent(
    """
    import tests.plugins  # noqa: F401

    cms.options.parseArguments()
    process = cms.Process("SIGNALS")
    process.source = cms.Source("RootSource", fileNames=["missing.root"])
    process.options.numberOfThreads = 2
    process.options.numberOfStreams = 2
    process.prod = cms.EDProducer("TestEventNumberProducer", size=cms.int32(3), seed=cms.int32(1))
    process.slow = slow_analyzer()
    process.p = cms.Path(process.prod, process.slow)
    process.out = cms.OutputModule("RootOutputModule", fileName="out.root",
                                   outputCommands=["drop *", "keep event", "keep prod_*"])
    process.e = cms.EndPath(process.out)
    """
)

# the main job (configs/miniaod_cfg.py, its options) with the slow analyzer on a Path of its own
SONIC_CONFIG = SLOW_ANALYZER + textwrap.dedent(
    f"""
    import runpy

    process = runpy.run_path({str(REPO_ROOT / "configs" / "miniaod_cfg.py")!r})["process"]
    process.slow = slow_analyzer()
    process.pSlow = cms.Path(process.slow)
    """
)


class Job:
    """``python -m framework ARGS`` in a subprocess, stdout and stderr to files in *workdir*."""

    def __init__(self, workdir: Path, *args: str, cwd: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
        self.stdout_path, self.stderr_path = workdir / "stdout.txt", workdir / "stderr.txt"
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.process = subprocess.Popen([sys.executable, "-m", "framework", *args], cwd=cwd, env=env,
                                            stdout=out, stderr=err, text=True)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    def wait_until(self, ready, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"never {what} (exit code {self.process.returncode}); stderr:\n{self.stderr}")
            time.sleep(0.05)

    def signal(self, sig: int) -> float:
        self.process.send_signal(sig)
        return time.monotonic()

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"still running {timeout:.0f} s after the signal; stderr:\n{self.stderr}") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def analyzed(marker: Path) -> list[int]:
    return [int(x) for x in marker.read_text().split()] if marker.exists() else []


def assert_stopped_cleanly(job: Job, rc: int, sig: int, files: set[str], workdir: Path) -> None:
    """Exit code 128 + signal, the one message, no traceback, no output and no temp part of it."""
    name = "terminated by SIGTERM" if sig == signal.SIGTERM else "interrupted"
    stderr = job.stderr
    assert rc == 128 + sig, stderr
    assert "Traceback" not in stderr and "Traceback" not in job.stdout, stderr
    assert "internal error" not in stderr, stderr
    match = re.search(rf"WARNING: {name}: finishing the (\d+) events in flight, no output written", stderr)
    assert match, stderr
    assert stderr.rstrip().splitlines()[-1] == name, stderr
    assert "TrigReport" not in job.stdout, job.stdout  # no summary of a job that did not finish
    assert {p.name for p in workdir.iterdir()} == files, "an output or a temp part of it was left"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "signals_cfg.py"
    path.write_text(CONFIG)
    return path


# ----------------------------------------------------------------------------- run
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_the_job_like_ctrl_c(config, sample_file, tmp_path, sig):
    marker = tmp_path / "marker.txt"
    job = Job(tmp_path, "run", str(config), f"inputFiles={sample_file}", f"marker={marker}", "delay=0.1",
              "outputFile=out.root", cwd=tmp_path)
    job.wait_until(lambda: len(analyzed(marker)) >= 3, "analyzed 3 events", timeout=60)
    job.signal(sig)
    rc = job.wait(timeout=30)
    assert_stopped_cleanly(job, rc, sig, {"signals_cfg.py", "marker.txt", "stdout.txt", "stderr.txt"}, tmp_path)
    in_flight = int(re.search(r"finishing the (\d+) events", job.stderr).group(1))
    assert 0 <= in_flight <= 2, job.stderr  # at most one per stream
    done = analyzed(marker)
    assert len(done) < SAMPLE_EVENTS, "the job was not stopped early"
    assert sorted(done) == list(range(1, len(done) + 1)), done  # every event read was finished, once


def test_second_signal_does_not_wait_for_a_stuck_event(config, sample_file, tmp_path):
    marker = tmp_path / "marker.txt"
    job = Job(tmp_path, "run", str(config), f"inputFiles={sample_file}", f"marker={marker}", "delay=0.02",
              "stallAt=4", "outputFile=out.root", cwd=tmp_path)
    job.wait_until(lambda: 4 in analyzed(marker), "reached the stalling event", timeout=60)
    job.signal(signal.SIGTERM)
    job.wait_until(lambda: "events in flight" in job.stderr, "logged the first SIGTERM", timeout=10)
    second = job.signal(signal.SIGTERM)
    rc = job.wait(timeout=20)  # not the 30 s grace period, nor the 120 s of the stuck event
    took = time.monotonic() - second
    assert_stopped_cleanly(job, rc, signal.SIGTERM, {"signals_cfg.py", "marker.txt", "stdout.txt", "stderr.txt"},
                           tmp_path)
    assert took < 15, f"{took:.1f} s from the second SIGTERM to the exit"
    assert "SIGTERM again: not waiting for the events in flight" in job.stderr, job.stderr
    assert re.search(r"not waiting for \d+ thread\(s\) still busy", job.stderr), job.stderr


# ----------------------------------------------------------------------------- compare
def test_sigterm_stops_compare_without_a_report(config, sample_file, tmp_path):
    marker, out = tmp_path / "marker.txt", tmp_path / "compare"
    job = Job(tmp_path, "compare", str(config), f"inputFiles={sample_file}", f"marker={marker}", "delay=0.1",
              "--out", str(out), "--no-plots", cwd=tmp_path)
    job.wait_until(lambda: len(analyzed(marker)) >= 3, "analyzed 3 events", timeout=60)
    job.signal(signal.SIGTERM)
    rc = job.wait(timeout=30)
    assert_stopped_cleanly(job, rc, signal.SIGTERM,
                           {"signals_cfg.py", "marker.txt", "stdout.txt", "stderr.txt", "compare"}, tmp_path)
    assert list(out.iterdir()) == [], "compare left a report, an output or a temp part of one"


# ----------------------------------------------------------------------------- SONIC, local fallback server
@pytest.mark.slow
@needs_server
def test_sigterm_stops_the_sonic_job_and_its_fallback_server(tmp_path):
    config = tmp_path / "signals_sonic_cfg.py"
    config.write_text(SONIC_CONFIG)
    marker = tmp_path / "marker.txt"
    job = Job(tmp_path, "run", str(config), "sonic=1", "wantSummary=0", f"marker={marker}", "delay=0.1",
              f"outputFile={tmp_path / 'sonic.root'}", cwd=REPO_ROOT)
    job.wait_until(lambda: len(analyzed(marker)) >= 3, "analyzed 3 events", timeout=180)
    server_pid = int(re.search(r"local Triton server pid (\d+) ready", job.stderr).group(1))
    group = process_group(server_pid)
    assert server_pid in group, group
    cmdline = Path(f"/proc/{server_pid}/cmdline").read_text().replace("\0", " ")
    server_dir = Path(re.search(r"--model-repository=(\S+)/repository", cmdline).group(1))
    assert server_dir.is_dir()
    job.signal(signal.SIGTERM)
    rc = job.wait(timeout=60)
    assert_stopped_cleanly(job, rc, signal.SIGTERM,
                           {"signals_sonic_cfg.py", "marker.txt", "stdout.txt", "stderr.txt"}, tmp_path)
    assert "local Triton server stopped" in job.stderr, job.stderr  # by the job itself, not by its watchdog
    assert not [p for p in group if pid_alive(p)], "tritonserver or its stubs outlived the job"
    assert not server_dir.exists(), "the server's temp repository was left"
    pid = job.process.pid
    assert glob.glob(f"/dev/shm/cmsfw_sonic_{pid}_*") + glob.glob(f"/dev/shm/cmsfw_triton_{pid}_*") == []


# ----------------------------------------------------------------------------- framework.signals in-process
def test_handlers_raise_then_are_restored():
    before = {sig: signal.getsignal(sig) for sig in signals.HANDLED}
    stop, never = signals.StopOnSignals(), threading.Event()
    with stop:
        assert all(signal.getsignal(sig) != before[sig] for sig in signals.HANDLED)
        with pytest.raises(signals.Terminated, match="terminated by SIGTERM") as first:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        os.kill(os.getpid(), signal.SIGINT)  # a second signal during the cleanup is only logged
        time.sleep(0.05)
        assert stop.received == [signal.SIGTERM, signal.SIGINT]
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        t0 = time.monotonic()
        with pytest.raises(signals.Terminated) as third:  # ends the grace period; still the SIGTERM's exit code
            signals.grace_wait(never, 20)
        assert time.monotonic() - t0 < 5
        assert stop.repeated and stop.received == [signal.SIGTERM, signal.SIGINT, signal.SIGINT]
    assert {sig: signal.getsignal(sig) for sig in signals.HANDLED} == before
    assert signals.exit_code(first.value) == signals.exit_code(third.value) == 143
    assert signals.exit_code(KeyboardInterrupt()) == 130 and signals.describe(KeyboardInterrupt()) == "interrupted"
    done = threading.Event()
    done.set()
    assert signals.grace_wait(done, 1) and not signals.grace_wait(never, 0.2)


def test_an_ignored_signal_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with signals.StopOnSignals():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) != signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, previous)


def test_run_config_leaves_the_handlers_alone(config, sample_file, tmp_path, monkeypatch):
    from framework.runner import run_config

    before = {sig: signal.getsignal(sig) for sig in signals.HANDLED}
    monkeypatch.chdir(tmp_path)
    report, _ = run_config(str(config), [f"inputFiles={sample_file}", f"marker={tmp_path / 'm.txt'}", "delay=0",
                                         "maxEvents=3"], progress=False)
    assert report.processed == 3 and (tmp_path / "out.root").is_file()
    assert {sig: signal.getsignal(sig) for sig in signals.HANDLED} == before
