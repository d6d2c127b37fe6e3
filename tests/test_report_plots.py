"""Plots chosen by what the product is: the specs declared beside the producers (found by entry point), ranges
from the data, sentinel defaults left out and counted, units on the axes, and the ROC area against a brute-force
count."""

from __future__ import annotations

import numpy as np

from framework.report.plotspec import PlotSpec, binning, installed, roc_auc, spec_for, split_defaults


def test_the_bundled_algorithms_declare_their_plots():
    plots = installed()
    assert len(plots) >= 3
    score = spec_for("pfParticleTransformerAK4JetTags_probb", plots)
    assert score.axis_label("pfParticleTransformerAK4JetTags_probb") == "ParT AK4 P(b)"
    assert score.defaults == (-1.0,) and score.per == "jets" and score.range == (0.0, 1.0)
    met = spec_for("deepMETProducer_pt", plots)
    assert met.axis_label("deepMETProducer_pt") == "DeepMET p_T [GeV]" and met.per == "events" and met.range is None
    vertex = spec_for("nuGraph3_vertex_x", plots)
    assert vertex.axis_label("nuGraph3_vertex_x") == "NuGraph3 vertex x [cm]" and not vertex.logy
    assert spec_for("nuGraph3_filter_u", plots).per == "hits"
    generic = spec_for("someone_else_value", plots)
    assert generic.axis_label("someone_else_value") == "someone_else_value" and generic.range is None


def test_defaults_are_left_out_and_counted():
    spec = PlotSpec(r"x", "x", defaults=(-1.0,))
    kept, n = split_defaults(np.array([-1.0, 0.2, -1.0, 0.9]), spec)
    assert n == 2 and list(kept) == [0.2, 0.9]


def test_range_from_the_data():
    rng = np.random.default_rng(1)
    met = rng.exponential(30.0, 5000)
    bins, lo, hi = binning(PlotSpec("m", "MET", unit="GeV"), met)
    assert bins == 40 and lo >= 0 and hi < 400 and np.mean(met <= hi) >= 0.998
    assert binning(PlotSpec("p", "p", range=(0, 1)), met) == (40, 0.0, 1.0)
    bins, lo, hi = binning(PlotSpec("n", "n"), np.array([0, 1, 2, 3, 3.0]))
    assert (bins, lo, hi) == (4, -0.5, 3.5)  # a bin per integer


def test_roc_auc_equals_a_brute_force_count():
    rng = np.random.default_rng(7)
    sig = np.round(rng.normal(1.0, 1.0, 300), 1)  # rounded: ties between signal and background
    bkg = np.round(rng.normal(0.0, 1.0, 400), 1)
    brute = ((sig[:, None] > bkg[None, :]).sum() + 0.5 * (sig[:, None] == bkg[None, :]).sum()) / (sig.size * bkg.size)
    eff_b, eff_s, auc = roc_auc(sig, bkg)
    assert abs(auc - brute) < 1e-12
    assert eff_s[0] == eff_b[0] == 0.0 and eff_s[-1] == eff_b[-1] == 1.0
    assert np.all(np.diff(eff_s) >= 0) and np.all(np.diff(eff_b) >= 0)
    assert roc_auc(sig, sig)[2] == 0.5
