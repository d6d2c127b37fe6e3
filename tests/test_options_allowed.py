"""Options that declare what they allow (``options.register(..., allowed=/minimum=/maximum=)``, CMSSW's
allowedValues): a value outside is a clear error naming the option, the value and the range; the main config's
``mergeEvents`` (>= 1) through the command line; ``executor=dask scheduler=`` on a closed port fails in seconds."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

from framework.config.varparsing import Options
from framework.exceptions import ConfigurationError

REPO = Path(__file__).resolve().parents[1]
MAIN_CONFIG = str(REPO / "configs" / "miniaod_cfg.py")


def fatal(proc) -> str:
    blocks = re.findall(r"----- Begin Fatal Exception -----\n(.*?)\n----- End Fatal Exception", proc.stderr, re.S)
    assert len(blocks) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return blocks[0]


def test_minimum_maximum_and_allowed_values():
    opts = Options(argv=["n=3", "mode=fast", "ks=1,2"])
    opts.register("n", 1, int, "how many", minimum=1, maximum=5)
    opts.register("mode", "slow", str, "speed", allowed=("slow", "fast"))
    opts.register("ks", [], int, "list", multiple=True, minimum=0)
    opts.parseArguments()
    assert (opts.n, opts.mode, opts.ks) == (3, "fast", [1, 2])
    for argv, name, expected in (
            (["n=0"], "n", "option n=0: out of range; n must be 1 to 5 (how many)."),
            (["n=9"], "n", "option n=9: out of range; n must be 1 to 5"),
            (["mode=fats"], "mode", "option mode=fats: not allowed; mode must be one of slow, fast. Did you mean 'fast'"),
            (["ks=1,-2"], "ks", "option ks=-2: out of range; ks must be >= 0"),
            (["n=two"], "n", "option n='two': expected an integer (1 to 5); n: how many."),
            (["ks=1,x"], "ks", "option ks='x': expected a comma-separated list of int (>= 0); ks: list.")):
        o = Options(argv=argv)
        o.register("n", 1, int, "how many", minimum=1, maximum=5)
        o.register("mode", "slow", str, "speed", allowed=("slow", "fast"))
        o.register("ks", [], int, "list", multiple=True, minimum=0)
        with pytest.raises(ConfigurationError) as err:
            o.parseArguments()
        assert expected in str(err.value), (name, str(err.value))
        assert "Valid keys" not in str(err.value)  # the key is right, only the value is not
    with pytest.raises(ConfigurationError, match=r"the default is outside what it allows: option n=0: out of range"):
        Options().register("n", 0, int, minimum=1)
    with pytest.raises(ConfigurationError, match="out of range"):
        o = Options()
        o.register("n", 1, int, minimum=1)
        o.setDefault("n", -1)
    o = Options()
    o.register("n", 1, int, "how many", minimum=1)
    assert "how many (>= 1) [default: 1]" in o.helpText()


@pytest.mark.parametrize("argv, expected", [
    (["protocol=htp"], "option protocol=htp: not allowed; protocol must be one of grpc, http. Did you mean 'http'?"),
    (["port=0"], "option port=0: out of range; port must be 1 to 65535"),
    (["port=8001,70000"], "option port=70000: out of range; port must be 1 to 65535"),
])
def test_standard_server_options_declare_what_they_take(argv, expected):
    """protocol= and port= take their values from the same constraints as the servers' parameters
    (framework.server.endpoints), so a bad one is refused while the arguments are parsed."""
    opts = Options(argv=argv)
    with pytest.raises(ConfigurationError) as err:
        opts.parseArguments()
    assert expected in str(err.value), str(err.value)
    ok = Options(argv=["protocol=http", "port=1,65535"])
    ok.parseArguments()
    assert (ok.protocol, ok.port) == ("http", [1, 65535])


@pytest.mark.parametrize("value", ["0", "-1"])
def test_invalid_merge_events_on_the_command_line(run_framework, tmp_path, value):
    out = tmp_path / "out.root"
    proc = run_framework("run", MAIN_CONFIG, "sonic=1", f"mergeEvents={value}", f"outputFile={out}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    message = fatal(proc)
    assert f"option mergeEvents={value}: out of range; mergeEvents must be >= 1" in message, message
    assert "local Triton server" not in proc.stderr  # refused before any server is started
    assert list(tmp_path.iterdir()) == []


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_dask_scheduler_on_a_closed_port_fails_in_seconds(run_framework, tmp_path):
    port = closed_port()
    t0 = time.monotonic()
    proc = run_framework("run", MAIN_CONFIG, "executor=dask", f"scheduler=127.0.0.1:{port}", "maxEvents=10",
                         f"outputFile={tmp_path / 'out.root'}", cwd=tmp_path, timeout=60)
    seconds = time.monotonic() - t0
    assert proc.returncode == 1, proc.stderr
    message = fatal(proc)
    assert seconds < 15, seconds  # loose: the client's own retries would take 30 s
    for text in (f"cannot connect to the Dask scheduler at 127.0.0.1:{port}", "Connection refused",
                 f"dask scheduler --host 127.0.0.1 --port {port}", "leave scheduler= out"):
        assert text in message, (text, message)
    assert list(tmp_path.iterdir()) == []


def test_dask_scheduler_address_without_a_port(run_framework, tmp_path):
    proc = run_framework("run", MAIN_CONFIG, "executor=dask", "scheduler=tcp://127.0.0.1", "maxEvents=10",
                         f"outputFile={tmp_path / 'out.root'}", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "not an address of the form tcp://HOST:PORT" in fatal(proc)
