"""The sample generators: AOD-like ttbar events in NanoAOD/PFNano naming (ROOT), LArTPC-like neutrino events
(NuML HDF5, :mod:`framework.samples.nugraph`), deterministic from a seed.

``generate(path, n_events, seed)`` (:mod:`framework.samples.writer`) writes a ROOT file (uproot, TTree
``Events``) with the branches of :mod:`framework.io.schema`: PF candidates with pileup, AK4 jets with their
candidate links and b-tagging link features, secondary vertices, MET, primary vertex.

The physics is a toy, but every number is derived from one consistent picture:

* each event has a primary vertex (PV) and ``PV_npvs - 1`` pileup vertices; pileup and underlying-event
  candidates (the large majority, several hundred to ~1500 per event) are soft and not in jets;
* 0-8 jets (ttbar-like: ~28% b, ~10% c, the rest light quarks / gluons) fragment into candidates within
  dR < 0.4 of the jet axis; the jet 4-vector is the sum of its linked candidates;
* b (c) jets contain a b (c) hadron that flies ``L ~ Exp(beta*gamma*c*tau)`` and decays into 2-5 (1-3)
  charged tracks of visible mass 1.3-4.8 GeV (0.5-1.8 GeV), photons, and in semileptonic decays an
  electron or muon plus a neutrino; the tracks originate at the decay point, so their impact parameters
  and the link features (Sip2d/3d, JetDist) follow from straight-line geometry; a secondary vertex (SV)
  is reconstructed from them in ~70% (b) / ~30% (c) of the jets; light jets get a fake 2-track SV in ~3%;
* impact parameters are smeared with pt-dependent resolutions with non-Gaussian tails;
* neutrinos (W -> l nu and semileptonic decays) make ``GenMET``; the PV system is balanced by a soft
  recoil, so ``MET`` (all candidates) scatters around ``GenMET`` by the pileup and calorimeter response,
  and ``PuppiMET`` (puppi-weighted) is closer to it.

Floating-point values are stored with a reduced mantissa, as MiniAOD packs PackedCandidates; this keeps
files small. Generation is vectorised over chunks of :data:`CHUNK_EVENTS` events; chunk ``i`` draws
from ``SeedSequence(seed, spawn_key=(i,))``, so the content is a function of the arguments only (never of
the machine or the compression), and complete chunks do not depend on ``n_events``.

The stages of a chunk (:func:`framework.samples.events.generate_chunk`, in drawing order) live in
:mod:`~framework.samples.jets` (generator-level jets, reco jets, links), :mod:`~framework.samples.particles`
(heavy decays, fragmentation, fake vertices, W leptons, underlying event, recoil, pileup, PF candidates) and
:mod:`~framework.samples.tracks` (track parameters, link features, secondary vertices), on the helpers of
:mod:`~framework.samples.kinematics`; data-quality runs and bad lumi sections in :mod:`~framework.samples.lumi`
and :mod:`~framework.samples.anomalies`; the ``generate`` command in :mod:`~framework.samples.cli`.
"""

from .events import CHUNK_EVENTS
from .nugraph import generate_event, generate_nugraph
from .writer import generate

__all__ = ["CHUNK_EVENTS", "generate", "generate_event", "generate_nugraph"]
