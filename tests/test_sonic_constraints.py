"""SONIC parameters declare their constraints once (framework/sonic/parameters.py): a bad value in a config's
``Client`` PSet or in the ``TritonService`` PSets is refused when the job is constructed, through the real CLI,
with exit 2, one message naming the module, the parameter, the value and what is allowed, and no traceback. No
server is needed: the check runs before any connection (the server named in the config is never asked)."""

from __future__ import annotations

import re

import pytest

from framework.core.params import Constraint, check_constraints
from framework.exceptions import ConfigurationError
from framework.sonic.parameters import (
    CLIENT_CONSTRAINTS,
    CLIENT_PARAMETERS,
    FALLBACK_CONSTRAINTS,
    FALLBACK_PARAMETERS,
)

CONFIG = """\
import framework.config as cms

process = cms.Process("BADCLIENT")
process.source = cms.Source("EmptySource")
process.maxEvents = cms.PSet(input=cms.untracked.int32(1))
process.TritonService = cms.Service("TritonService", servers=cms.VPSet(
    cms.PSet(name=cms.string("default"), address=cms.string("127.0.0.1"), port=cms.uint32(8001){server})),
    fallback=cms.PSet({fallback}))
process.deepMET = cms.EDProducer("DeepMETSonicProducer",
                                 Client=cms.PSet(modelName=cms.string("deepmet"){client}))
process.p = cms.Path(process.deepMET)
process.out = cms.OutputModule("RootOutputModule", fileName=cms.string("out.root"))
process.endpath = cms.EndPath(process.out)
"""


def fatal(proc) -> str:
    """The one fatal-exception block of a failed job (and no traceback anywhere)."""
    blocks = re.findall(r"----- Begin Fatal Exception -----\n(.*?)\n----- End Fatal Exception", proc.stderr, re.S)
    assert len(blocks) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return blocks[0]


def run_config(run_framework, tmp_path, client: str = "", server: str = "", fallback: str = ""):
    cfg = tmp_path / "bad_cfg.py"
    cfg.write_text(CONFIG.format(client=client, server=server, fallback=fallback))
    out = tmp_path / "out"
    out.mkdir()
    proc = run_framework("run", str(cfg), cwd=out, timeout=60)
    assert list(out.iterdir()) == [], "no output file from a refused job"
    return proc


@pytest.mark.parametrize("client, expected", [
    (', mode=cms.string("Asink")',
     "module 'deepMET': Client: mode must be one of 'Sync', 'Async', 'PseudoAsync', got 'Asink'. "
     "Did you mean 'Async'?"),
    (', mergeEvents=cms.int32(-1)',
     "module 'deepMET': Client: mergeEvents = -1 is out of range: mergeEvents must be >= 1"),
    (', allowedTries=cms.int32(0)',
     "module 'deepMET': Client: allowedTries = 0 is out of range: allowedTries must be >= 1"),
    (', timeoutUnit=cms.string("ms")',
     "module 'deepMET': Client: timeoutUnit must be one of 'seconds', 'milliseconds', 'microseconds', got 'ms'."),
    (', timeout=cms.double(-2.5)',
     "module 'deepMET': Client: timeout = -2.5 is out of range: timeout must be >= 0"),
    (', batchMode=cms.string("ragged")',
     "module 'deepMET': Client: batchMode must be one of 'Rectangular', 'Ragged', got 'ragged'. "
     "Did you mean 'Ragged'?"),
    (', retryDelay=cms.double(-1)',
     "module 'deepMET': Client: retryDelay = -1.0 is out of range: retryDelay must be >= 0"),
    # the protocol is chosen per server (TritonService.servers), not in the Client PSet: the valid names shown
    (', protocol=cms.string("http")',
     "module 'deepMET' (DeepMETSonicProducer).Client: unknown parameter 'protocol'. Valid parameters: mode,"),
])
def test_bad_client_value_exits_2_naming_the_allowed_values(run_framework, tmp_path, client, expected):
    proc = run_config(run_framework, tmp_path, client=client)
    assert proc.returncode == 2, proc.stderr
    message = fatal(proc)
    assert expected in message, message


@pytest.mark.parametrize("server, fallback, expected", [
    (', protocol=cms.string("htp")', "",
     "service TritonService: servers[0] ('default'): protocol must be one of 'grpc', 'http', got 'htp'. "
     "Did you mean 'http'?"),
    ("", 'device=cms.string("cuda")',
     "service TritonService: fallback: device must be one of 'auto', 'cpu', 'gpu', got 'cuda'."),
    ("", 'protocol=cms.string("grcp")',
     "service TritonService: fallback: protocol must be one of 'grpc', 'http', got 'grcp'. Did you mean 'grpc'?"),
    ("", 'instances=cms.int32(-3)',
     "service TritonService: fallback: instances = -3 is out of range: instances must be >= 0"),
])
def test_bad_service_value_exits_2_naming_the_allowed_values(run_framework, tmp_path, server, fallback, expected):
    proc = run_config(run_framework, tmp_path, server=server, fallback=fallback)
    assert proc.returncode == 2, proc.stderr
    message = fatal(proc)
    assert expected in message, message


def test_every_constraint_names_a_declared_parameter_and_allows_its_default():
    """The tables sit beside the defaults: a constraint on a parameter that does not exist, or one the default
    breaks, is a mistake in the tables."""
    for defaults, constraints in ((CLIENT_PARAMETERS, CLIENT_CONSTRAINTS),
                                  (FALLBACK_PARAMETERS, FALLBACK_CONSTRAINTS)):
        assert set(constraints) <= set(defaults), set(constraints) - set(defaults)
        check_constraints(constraints, {k: v for k, v in defaults.items() if k in constraints}, "defaults")


def test_constraint_texts_and_bounds():
    assert Constraint(minimum=1, maximum=5).text() == "1 to 5"
    assert Constraint(maximum=5).text() == "<= 5"
    assert Constraint(allowed=("a", "b")).text() == "one of 'a', 'b'"
    assert Constraint(minimum=1, maximum=5).check("n", 5, "here") == 5
    with pytest.raises(ConfigurationError, match=re.escape("here: n = 6 is out of range: n must be 1 to 5 (help).")):
        Constraint(minimum=1, maximum=5, help="help").check("n", 6, "here")
    with pytest.raises(ValueError, match="here: k must be one of 'a', 'b', got 'c'."):
        Constraint(allowed=("a", "b")).check("k", "c", "here", error=ValueError)

