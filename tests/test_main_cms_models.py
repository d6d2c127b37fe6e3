"""The main job with the real CMS models of ../shared (ParticleTransformer AK4, DeepMET): direct and SONIC (the
local fallback server, which verifies the models' checksum agent) on 20 events of the bundled sample.

Direct vs SONIC tolerance: ParT scores within 1e-5 absolute, DeepMET within 1e-4 relative to the MET vector
(see ``tests/main_fixtures.py``).
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from tests.main_fixtures import (
    SAMPLE,
    SCORE_BRANCHES,
    SERVER_OK,
    SERVER_REASON,
    TOLERANCE_TEXT,
    TWINS,
    assert_same_events,
    assert_score_conventions,
    assert_twins_agree,
    needs_server,
    run_main,
    sample_has_candidates,
)

pytestmark = [pytest.mark.shared]

# events 40..59 of the bundled sample: events without jets (43, 45) and jets without candidates (52, 58)
SKIP, EVENTS = 40, 20


@pytest.fixture(scope="module")
def cms_models(shared_dir) -> dict[str, Path]:
    models = {"partModel": shared_dir / "models" / "particletransformer_AK4", "deepmetModel": shared_dir / "models" / "deepmet"}
    for path in models.values():
        if not (path / "config.pbtxt").is_file() or not (path / "1" / "model.onnx").is_file():
            pytest.skip(f"{path} (a real CMS model in Triton layout) is absent")
    return models


def _args(models: dict[str, Path]) -> list[str]:
    return [f"inputFiles={SAMPLE}", f"skipEvents={SKIP}", f"maxEvents={EVENTS}",
            *(f"{key}={path}" for key, path in models.items())]


@pytest.fixture(scope="module")
def cms_direct(cms_models, tmp_path_factory):
    return run_main(tmp_path_factory.mktemp("cms") / "direct.root", *_args(cms_models))


@pytest.fixture(scope="module")
def cms_sonic(cms_models, tmp_path_factory):
    if not SERVER_OK:
        pytest.skip(SERVER_REASON)
    return run_main(tmp_path_factory.mktemp("cms") / "sonic.root", *_args(cms_models), "sonic=1")


def test_direct_job_loads_the_cms_models(cms_direct, cms_models):
    assert cms_direct.report.processed == EVENTS
    loaded = [m for m in cms_direct.log if m.startswith("loaded ")]
    for path in cms_models.values():
        assert any(str(path / "1" / "model.onnx") in m or str(path.resolve() / "1" / "model.onnx") in m
                   for m in loaded), f"{path} was not loaded: {loaded}"


@needs_server
def test_sonic_job_serves_the_cms_models_from_the_fallback(cms_sonic):
    assert cms_sonic.report.processed == EVENTS
    assert cms_sonic.fallback_started()
    for model in ("particletransformer_AK4", "deepmet"):
        assert any(f"model '{model}' -> server 'fallback'" in m for m in cms_sonic.log), cms_sonic.log


@needs_server
def test_cms_models_direct_and_sonic_agree(cms_direct, cms_sonic):
    """Same events and jets; ParT scores within 1e-5 absolute, DeepMET within 1e-4 relative."""
    d, s = cms_direct.arrays(), cms_sonic.arrays()
    assert_same_events(d, s, "CMS models, direct vs SONIC")
    assert_twins_agree(d, s, f"CMS models, direct vs SONIC [{TOLERANCE_TEXT}]")


@pytest.mark.parametrize("twin", TWINS)
def test_cms_scores_are_probabilities_or_minus_one(cms_direct, request, twin):
    run = request.getfixturevalue("cms_sonic") if twin == "sonic" else cms_direct
    arrays = run.arrays()
    has = sample_has_candidates(SAMPLE, SKIP, EVENTS)
    assert any((~h).any() for h in has), "the chosen events hold no jet without candidates"
    assert any(len(h) == 0 for h in has), "the chosen events hold no event without jets"
    assert_score_conventions(arrays, has, f"CMS models, {twin}")

    scores = np.stack([ak.to_numpy(ak.flatten(arrays[name])) for name in SCORE_BRANCHES], axis=1)
    mask = np.concatenate(has)
    assert scores.shape == (mask.size, 6)
    assert (np.isfinite(scores[mask])).all()
    assert (scores[~mask] == -1).all()
    np.testing.assert_allclose(scores[mask].sum(axis=1), 1.0, atol=1e-5,
                               err_msg="the 6 flavour scores of a jet with candidates must sum to 1")
    # a real tagger, not a constant: the scores vary between jets
    assert scores[mask].std(axis=0).min() > 1e-4
    met = ak.to_numpy(arrays["deepMETProducer_pt"])
    assert np.isfinite(met).all() and (met > 0).all()
