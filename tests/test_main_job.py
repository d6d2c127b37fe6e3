"""The main job ``configs/miniaod_cfg.py``: the SONIC modifier swap, direct vs SONIC outputs on the bundled
sample (1 and 4 streams; the local fallback server and an already-running server), the products' conventions,
and its error paths. Real runs, real ``tritonserver``, real ROOT files.

Direct vs SONIC tolerance: ParT scores within 1e-5 absolute, DeepMET within 1e-4 relative to the MET vector
(see ``tests/main_fixtures.py``).
"""

from __future__ import annotations

import re

import awkward as ak
import numpy as np
import pytest
import uproot

from framework.config.types import plain
from framework.configloader import load_config
from framework.exceptions import ConfigurationError
from framework.server import LocalTritonServer
from framework.sonic.service import server_statistics
from framework.sonic.transport import ServerAddress, make_transport
from tests.main_fixtures import (
    CONFIG,
    EVENTS,
    MET,
    MET_BRANCHES,
    MODELS,
    RUN_SONIC,
    SAMPLE,
    SCORE_BRANCHES,
    SCORES,
    SERVER_MARKS,
    SERVER_OK,
    SERVER_REASON,
    SKIP,
    TOLERANCE_TEXT,
    assert_same_events,
    assert_score_conventions,
    assert_twins_agree,
    in_repo,
    needs_server,
    run_main,
    sample_has_candidates,
)

ML_LABELS = (SCORES, MET)
DIRECT_TYPES = {SCORES: "ParticleTransformerAK4ONNXJetTagsProducer", MET: "DeepMETProducer"}
SONIC_TYPES = {SCORES: "ParticleTransformerAK4SonicJetTagsProducer", MET: "DeepMETSonicProducer"}
JOB = [f"inputFiles={SAMPLE}", f"skipEvents={SKIP}", f"maxEvents={EVENTS}"]


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def direct_runs(tmp_path_factory):
    """The direct job on events 10..59 of the bundled sample with 1 and with 4 streams."""
    out = tmp_path_factory.mktemp("main_direct")
    return {streams: run_main(out / f"direct_{streams}.root", *JOB, f"numStreams={streams}") for streams in (1, 4)}


@pytest.fixture(scope="module")
def external_server():
    """An already-running bundled server on the bundled models (not the job's fallback)."""
    if not SERVER_OK:
        pytest.skip(SERVER_REASON)
    with LocalTritonServer([MODELS], device="cpu", models=["particletransformer_AK4", "deepmet"]) as server:
        yield server


def _requests(address: str) -> dict[str, int]:
    transport = make_transport(ServerAddress(address, True))
    try:
        return {m: server_statistics(transport.statistics(m)).success for m in ("particletransformer_AK4", "deepmet")}
    finally:
        transport.close()


_SONIC_RUNS: dict[str, dict[int, object]] = {}


def _sonic_runs(protocol: str, tmp_path_factory, external_server) -> dict[int, object]:
    """The SONIC job on the same events over *protocol* (``protocol=``): 4 streams on the local fallback server
    (sonic=1, no address), and 1 stream on the already-running server (sonic=1 address=127.0.0.1 port=PORT),
    with the number of requests that server answered during that run. Made once per protocol."""
    if protocol in _SONIC_RUNS:
        return _SONIC_RUNS[protocol]
    out = tmp_path_factory.mktemp(f"main_sonic_{protocol}")
    fallback = run_main(out / "sonic_fallback_4.root", *JOB, "sonic=1", "numStreams=4", f"protocol={protocol}")
    port = external_server.http_port if protocol == "http" else external_server.grpc_port
    before = _requests(external_server.grpc_address)
    external = run_main(out / "sonic_external_1.root", *JOB, "sonic=1", "address=127.0.0.1",
                        f"port={port}", "numStreams=1", f"protocol={protocol}")
    after = _requests(external_server.grpc_address)
    external.requests = {m: after[m] - before[m] for m in after}
    external.port = port
    _SONIC_RUNS[protocol] = {4: fallback, 1: external}
    return _SONIC_RUNS[protocol]


@pytest.fixture(scope="module", params=["grpc", "http"])
def sonic_runs(request, tmp_path_factory, external_server):
    """The SONIC runs (see :func:`_sonic_runs`) over gRPC and over HTTP: every test that uses them runs for both
    transports."""
    return _sonic_runs(request.param, tmp_path_factory, external_server)


@pytest.fixture(scope="module")
def sonic_runs_grpc(tmp_path_factory, external_server):
    return _sonic_runs("grpc", tmp_path_factory, external_server)


@pytest.fixture(scope="module")
def sonic_runs_http(tmp_path_factory, external_server):
    return _sonic_runs("http", tmp_path_factory, external_server)


TWIN_RUNS = [pytest.param("direct"), *(pytest.param(f"sonic_runs_{p}", marks=SERVER_MARKS) for p in ("grpc", "http"))]


# ------------------------------------------------------------------------------------ 1. the modifier swap
def test_modifier_swap_keeps_labels_and_changes_types():
    direct, _ = load_config(str(CONFIG), [])
    sonic, _ = load_config(str(CONFIG), ["sonic=1"])
    assert list(direct.modules_()) == list(sonic.modules_()), "sonic=1 must keep every module label"
    assert set(ML_LABELS) <= set(direct.modules_())
    for label in ML_LABELS:
        assert direct.modules_()[label].type_() == DIRECT_TYPES[label]
        assert sonic.modules_()[label].type_() == SONIC_TYPES[label]
    assert direct.modules_()["out"].type_() == sonic.modules_()["out"].type_() == "RootOutputModule"
    assert list(direct.endpaths_()) == list(sonic.endpaths_())
    assert list(direct.tasks_()) == list(sonic.tasks_())

    assert "TritonService" not in direct.services_(), "the direct job must not declare a TritonService"
    service = sonic.services_().get("TritonService")
    assert service is not None, "sonic=1 must add a TritonService (enableSonicTriton)"
    assert service.type_() == "TritonService"
    assert plain(service.fallback.enable) is True, "the SONIC config must enable the local fallback server"
    assert len(service.servers) == 0, "no server is configured without address="


def test_run_sonic_gives_the_same_config_as_the_sonic_option():
    with_option, _ = load_config(str(CONFIG), ["sonic=1"])
    with_wrapper, _ = load_config(str(RUN_SONIC), [f"config={CONFIG}"])
    direct, _ = load_config(str(CONFIG), [])
    assert with_wrapper.dumpPython() == with_option.dumpPython()
    assert with_wrapper.dumpPython() != direct.dumpPython()
    # run_sonic.py's extra modifiers are reset after use: a config loaded afterwards is direct again
    again, _ = load_config(str(CONFIG), [])
    assert again.dumpPython() == direct.dumpPython()


@pytest.mark.parametrize("args", [[], ["sonic=1"]], ids=["direct", "sonic"])
def test_dump_is_valid_python_giving_the_same_config(args, capsys):
    from framework.runner import main_dump

    with in_repo():
        assert main_dump([str(CONFIG), *args]) == 0
    text = capsys.readouterr().out
    types = SONIC_TYPES if args else DIRECT_TYPES
    for label in ML_LABELS:
        assert f"process.{label} = cms.EDProducer(\n    '{types[label]}'" in text
    assert ("TritonService" in text) == bool(args)
    namespace: dict = {}
    exec(compile(text, "<dump>", "exec"), namespace)  # the dump is a config on its own
    assert namespace["process"].dumpPython() == text


# ------------------------------------------------------------------------- 2. direct vs SONIC, products
@pytest.mark.parametrize("streams", [1, 4])
@needs_server
def test_direct_and_sonic_agree(direct_runs, sonic_runs, streams):
    """Same events and jets; every product within the tolerance: ParT scores 1e-5 absolute, DeepMET 1e-4
    relative (to the MET vector: |d px|, |d py|, |d pt| <= 1e-4 pt, |d phi| <= 1e-4)."""
    direct, sonic = direct_runs[streams], sonic_runs[streams]
    assert direct.report.processed == sonic.report.processed == EVENTS
    d, s = direct.arrays(), sonic.arrays()
    assert_same_events(d, s, f"direct vs SONIC, {streams} stream(s)")
    assert np.array_equal(np.asarray(d["event"]), np.arange(SKIP + 1, SKIP + EVENTS + 1)), "not events 11..60"
    assert_twins_agree(d, s, f"direct vs SONIC, {streams} stream(s) [{TOLERANCE_TEXT}]")


@needs_server
def test_products_are_the_same_branches(direct_runs, sonic_runs):
    expected = {*SCORE_BRANCHES, *MET_BRANCHES, f"n{SCORES}"}
    for streams in (1, 4):
        direct = set(uproot.open(direct_runs[streams].output)["Events"].keys())
        sonic = set(uproot.open(sonic_runs[streams].output)["Events"].keys())
        assert direct == sonic
        assert expected <= direct, f"missing products: {sorted(expected - direct)}"
        assert not any(k.startswith(("PFCands_", "JetPFCands_", "SV_")) for k in direct), "dropped inputs were kept"


def test_direct_four_streams_bit_identical_to_one(direct_runs):
    one, four = direct_runs[1].arrays(), direct_runs[4].arrays()
    assert sorted(one) == sorted(four)
    for name in one:
        assert ak.to_list(one[name]) == ak.to_list(four[name]), f"{name}: 4 streams differ from 1 stream"


@needs_server
def test_sonic_four_streams_within_tolerance_of_one(sonic_runs):
    """SONIC 4 streams (fallback server, dynamically batched requests) vs 1 stream (the external server): same
    events and jets, products within the twin tolerance (scores 1e-5 absolute, DeepMET 1e-4 relative)."""
    one, four = sonic_runs[1].arrays(), sonic_runs[4].arrays()
    assert_same_events(one, four, "SONIC 1 vs 4 streams")
    assert_twins_agree(one, four, f"SONIC 1 vs 4 streams [{TOLERANCE_TEXT}]")


@needs_server
def test_fallback_started_only_without_address(sonic_runs, external_server):
    fallback, external = sonic_runs[4], sonic_runs[1]
    assert fallback.fallback_started(), "sonic=1 without address= must start the local fallback server"
    assert any("-> server 'fallback'" in m for m in fallback.log)

    assert not external.fallback_started(), (
        "with address= of a server that serves both models the fallback must not start; log:\n"
        + "\n".join(external.log))
    for model in ("particletransformer_AK4", "deepmet"):
        assert any(f"model '{model}' -> server 'default' (127.0.0.1:{external.port})" in m
                   for m in external.log), f"{model} was not sent to the server given by address=/port="
    # the requests really went there: one ParT request per event with jets (none for an event without jets),
    # one DeepMET request per event
    njet = np.asarray(external.arrays()["nJet"])
    assert external.requests == {"particletransformer_AK4": int((njet > 0).sum()), "deepmet": EVENTS}


@pytest.mark.parametrize("twin", TWIN_RUNS)
def test_scores_are_minus_one_for_jets_without_candidates(direct_runs, request, twin):
    runs = request.getfixturevalue(twin) if twin != "direct" else direct_runs
    has = sample_has_candidates(SAMPLE, SKIP, EVENTS)
    assert sum(int((~h).sum()) for h in has) >= 1, "the chosen events hold no jet without candidates"
    for streams in (1, 4):
        assert_score_conventions(runs[streams].arrays(), has, f"{twin}, {streams} stream(s)")


@pytest.mark.parametrize("twin", TWIN_RUNS)
def test_event_without_jets_gets_no_scores_but_a_met(direct_runs, request, twin):
    runs = request.getfixturevalue(twin) if twin != "direct" else direct_runs
    arrays = runs[4].arrays()
    njet = np.asarray(arrays["nJet"])
    empty = np.flatnonzero(njet == 0)
    assert empty.size >= 1, "the chosen events hold no event without jets"
    assert np.array_equal(np.asarray(arrays[f"n{SCORES}"]), njet)
    for name in SCORE_BRANCHES:
        assert all(len(arrays[name][i]) == 0 for i in empty), f"{name}: scores for an event without jets"
    for name in MET_BRANCHES:
        assert np.isfinite(np.asarray(arrays[name])[empty]).all(), f"{name}: no finite MET for an event without jets"
    assert (np.asarray(arrays[f"{MET}_pt"]) > 0).all()


# -------------------------------------------------------------------------------------------- 6. errors
def test_address_on_a_direct_run_is_a_clear_error(run_framework, tmp_path):
    with pytest.raises(ConfigurationError, match="sonic=1"):
        load_config(str(CONFIG), ["address=127.0.0.1", "port=8001"])
    result = run_framework("run", CONFIG, "maxEvents=2", "address=127.0.0.1", "port=8001",
                           f"outputFile={tmp_path / 'x.root'}")
    assert result.returncode != 0
    assert "address=/port=/protocol= given" in result.stderr and "sonic=1" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "x.root").exists()


def test_nanoaod_input_names_the_missing_pf_candidate_branch(run_framework, nanoaod_file, tmp_path):
    from producers.deepmet import features as deepmet_features
    from producers.particle_transformer_ak4 import features as part_features

    result = run_framework("run", CONFIG, "maxEvents=5", f"inputFiles={nanoaod_file}",
                           f"outputFile={tmp_path / 'x.root'}")
    assert result.returncode != 0
    err = result.stderr
    assert "Traceback" not in err + result.stdout, err
    assert "InputError" in err and str(nanoaod_file.name) in err, err
    named = re.findall(r"branch '(\w+)' not found", err)
    assert named, f"the error names no missing branch:\n{err}"
    needed = set(part_features.INPUT_BRANCHES) | set(deepmet_features.INPUT_BRANCHES)
    present = set(uproot.open(nanoaod_file)["Events"].keys())
    assert named[0] in needed and named[0] not in present and "PFCands_" in named[0], err
    assert "no PF candidates (PFCands_*" in err and "Needed by module 'pfParticleTransformerAK4TagInfos'" in err, err
    assert not (tmp_path / "x.root").exists()
