"""Config fragment: the DQM monitoring elements of the DIALS examples, filled per luminosity section.

- ``JetMET/MET/pfMETT1/Cleaned/METSig``: 51 bins over [0, 51), as DQMOffline's METAnalyzer books it (lumi
  scope); filled here with NanoAOD's ``MET_significance`` (``MET_pt/sqrt(MET_sumEt)``, the ``mEtSig`` of
  ``reco::MET``, is another valid expression);
- ``JetMET/Jet/Cleanedak4PFJetsCHS/PhiVSEta``: the jet occupancy map, 50 bins in eta over [-5, 5) by 24 in phi
  over [-3.2, 3.2), as JetAnalyzer books it;
- ``JetMET/MET/pfMETT1/Cleaned/PFMETMinusPuppiMET``: ``|vec MET - vec PuppiMET|``, 50 bins over [0, 250) GeV,
  the comparison of two MET algorithms a DQM expert books against noise: real MET (neutrinos) moves both, a
  spurious deposit that is not a PF candidate (HCAL noise) only the PF MET, so good sections have a narrow core
  and noisy ones a broad tail.
"""

from __future__ import annotations

import framework.config as cms

DEFAULT_LABEL = "dqmHistograms"
MET_SIG = "JetMET/MET/pfMETT1/Cleaned/METSig"
JET_OCCUPANCY = "JetMET/Jet/Cleanedak4PFJetsCHS/PhiVSEta"
MET_MINUS_PUPPI = "JetMET/MET/pfMETT1/Cleaned/PFMETMinusPuppiMET"
#: |vec MET - vec PuppiMET| from NanoAOD's (pt, phi) of both (a sum of squares: never negative)
MET_MINUS_PUPPI_EXPRESSION = ("sqrt((MET_pt*cos(MET_phi) - PuppiMET_pt*cos(PuppiMET_phi))**2 + "
                              "(MET_pt*sin(MET_phi) - PuppiMET_pt*sin(PuppiMET_phi))**2)")


def met_significance(expression: str = "MET_significance") -> cms.PSet:
    """The METSig ME (1-D, 51 bins)."""
    return cms.PSet(name=cms.string(MET_SIG), expression=cms.string(expression), bins=cms.int32(51),
                    low=cms.double(0.0), high=cms.double(51.0))


def jet_occupancy(eta: str = "Jet_eta", phi: str = "Jet_phi") -> cms.PSet:
    """The jet eta-phi occupancy ME (2-D, one entry per jet)."""
    return cms.PSet(name=cms.string(JET_OCCUPANCY),
                    xExpression=cms.string(eta), xBins=cms.int32(50), xLow=cms.double(-5.0), xHigh=cms.double(5.0),
                    yExpression=cms.string(phi), yBins=cms.int32(24), yLow=cms.double(-3.2), yHigh=cms.double(3.2))


def met_minus_puppi(expression: str = MET_MINUS_PUPPI_EXPRESSION, note: str = "") -> cms.PSet:
    """The PF MET vs Puppi MET ME (1-D, 50 bins of 5 GeV; the input needs ``PuppiMET_pt`` and ``PuppiMET_phi``).
    *note*: said when an input lacks them (e.g. how the config leaves the ME out)."""
    me = cms.PSet(name=cms.string(MET_MINUS_PUPPI), expression=cms.string(expression), bins=cms.int32(50),
                  low=cms.double(0.0), high=cms.double(250.0))
    if note:
        me.note = cms.untracked.string(note)
    return me


def histogrammer(*elements: cms.PSet) -> cms.EDAnalyzer:
    """A ``DQMHistogrammer`` of *elements* (default: METSig and the jet occupancy map)."""
    elements = elements or (met_significance(), jet_occupancy())
    return cms.EDAnalyzer("DQMHistogrammer", monitorElements=cms.VPSet(*elements))


def add(process: cms.Process, label: str = DEFAULT_LABEL, *elements: cms.PSet) -> cms.EDAnalyzer:
    """Attach ``histogrammer(*elements)`` to *process* as *label* (put it on a Path) and return it."""
    module = histogrammer(*elements)
    setattr(process, label, module)
    return module
