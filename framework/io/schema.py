"""The NanoAOD/PFNano-style event schema written by :mod:`framework.samples`.

The schema is plain data so that docs, tests and readers can use it: :data:`BRANCHES` maps every branch
name of the ``Events`` tree to a :class:`Branch` (dtype, collection, one-line meaning). Names follow real
NanoAOD (``Jet_*``, ``SV_*``, ``PV_*``, ``MET_*``, ``GenMET_*``) and PFNano (``PFCands_*``,
``JetPFCands_*``, ``JetSVs_*``), so real files read the same way.

Two deliberate differences from real NanoAOD, both harmless for readers:

- counters (``nJet``, ``nPFCands``, ...) are ``int32`` (what uproot writes) instead of ``uint32``;
- ``Jet_nConstituents`` and ``SV_ntracks`` are ``int32`` instead of ``uint8``.

PFNano as released (cms-jet/PFNano) lacks ``PFCands_fromPV``, ``PFCands_hcalFraction`` and
``JetPFCands_btagSip2dVal/Sig``; :mod:`framework.io.pfnano` derives them when such a file is read.

Units: GeV, cm, radians. ``SV_chi2`` is the *normalized* chi2 of the vertex fit, as in NanoAOD
(``vertexNormalizedChi2()``); the fit chi2 is ``SV_chi2 * SV_ndof``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Branch",
    "BRANCHES",
    "COLLECTIONS",
    "TREE_NAME",
    "branch_names",
    "collection_fields",
    "counter_name",
]

TREE_NAME = "Events"


@dataclass(frozen=True)
class Branch:
    """One branch of the ``Events`` tree."""

    name: str
    dtype: str
    doc: str
    collection: str | None = None  # jagged collection it belongs to; None for one value per event

    @property
    def field(self) -> str:
        """Name inside its collection (``Jet_pt`` -> ``pt``); the full name for per-event branches."""
        if self.collection is None:
            return self.name
        return self.name[len(self.collection) + 1 :]


_EVENT = [
    ("run", "uint32", "run number"),
    ("luminosityBlock", "uint32", "luminosity block number"),
    ("event", "uint64", "event number"),
]

_PFCANDS = [
    ("pt", "float32", "transverse momentum (GeV)"),
    ("eta", "float32", "pseudorapidity"),
    ("phi", "float32", "azimuthal angle (rad)"),
    ("mass", "float32", "mass (GeV): pion/electron/muon mass for charged, 0 for neutrals"),
    ("charge", "int32", "electric charge: -1, 0, +1"),
    ("pdgId", "int32", "PF id as in pat::PackedCandidate: +-211, +-11, +-13, 22, 130, 1 (HF had), 2 (HF em)"),
    ("d0", "float32", "transverse impact parameter dxy w.r.t. the PV (cm), 0 for neutrals"),
    ("dz", "float32", "longitudinal impact parameter w.r.t. the PV (cm), 0 for neutrals"),
    ("d0Err", "float32", "uncertainty of d0 (cm), 0 for neutrals"),
    ("dzErr", "float32", "uncertainty of dz (cm), 0 for neutrals"),
    ("puppiWeight", "float32", "PUPPI weight, 0..1"),
    ("fromPV", "int32", "pat::PackedCandidate::fromPV: 0 NoPV, 1 PVLoose, 2 PVTight, 3 PVUsedInFit"),
    ("pvAssocQuality", "int32", "pat::PackedCandidate::pvAssociationQuality, 0..7 (7 = UsedInFitTight)"),
    ("trkChi2", "float32", "normalized chi2 of the track, 0 for neutrals"),
    ("trkQuality", "int32", "track quality mask (4 = highPurity bit), 0 for neutrals"),
    ("hcalFraction", "float32", "HCAL energy fraction for neutral hadrons (130, 1), 0 otherwise"),
]

_JET = [
    ("pt", "float32", "AK4 jet transverse momentum (GeV)"),
    ("eta", "float32", "AK4 jet pseudorapidity"),
    ("phi", "float32", "AK4 jet azimuthal angle"),
    ("mass", "float32", "AK4 jet mass (GeV)"),
    ("hadronFlavour", "int32", "hadron flavour: 5 b, 4 c, 0 light"),
    ("partonFlavour", "int32", "parton flavour: +-1..5, 21 gluon, 0 unmatched"),
    ("nConstituents", "int32", "number of linked PF candidates (JetPFCands entries of this jet)"),
    ("nSVs", "int32", "number of linked secondary vertices (JetSVs entries of this jet)"),
]

_JETPFCANDS = [
    ("jetIdx", "int32", "index of the jet in Jet"),
    ("pFCandsIdx", "int32", "index of the candidate in PFCands"),
    ("btagEtaRel", "float32", "rapidity of the track relative to the jet axis (pion mass), 0 for neutrals"),
    ("btagPtRatio", "float32", "track momentum transverse to the jet axis / |p|, 0 for neutrals"),
    ("btagPParRatio", "float32", "track momentum along the jet axis / |p|, 0 for neutrals"),
    ("btagSip2dVal", "float32", "signed transverse impact parameter (cm; sign from the jet axis), 0 for neutrals"),
    ("btagSip2dSig", "float32", "btagSip2dVal / its uncertainty, 0 for neutrals"),
    ("btagSip3dVal", "float32", "signed 3D impact parameter (cm; sign from the jet axis), 0 for neutrals"),
    ("btagSip3dSig", "float32", "btagSip3dVal / its uncertainty, 0 for neutrals"),
    ("btagJetDistVal", "float32", "minus the distance between track and jet axis (cm, <= 0), 0 for neutrals"),
]

_SV = [
    ("pt", "float32", "secondary vertex transverse momentum (GeV), sum of its tracks"),
    ("eta", "float32", "secondary vertex momentum pseudorapidity"),
    ("phi", "float32", "secondary vertex momentum azimuthal angle"),
    ("mass", "float32", "invariant mass of the tracks of the vertex (GeV)"),
    ("chi2", "float32", "normalized chi2 of the vertex fit (as NanoAOD: vertexNormalizedChi2)"),
    ("ndof", "float32", "degrees of freedom of the vertex fit"),
    ("dxy", "float32", "transverse flight distance from the PV (cm)"),
    ("dxySig", "float32", "dxy / its uncertainty"),
    ("dlen", "float32", "3D flight distance from the PV (cm)"),
    ("dlenSig", "float32", "dlen / its uncertainty"),
    ("pAngle", "float32", "angle between the vertex momentum and the PV->SV flight direction (rad)"),
    ("x", "float32", "vertex x position (cm)"),
    ("y", "float32", "vertex y position (cm)"),
    ("z", "float32", "vertex z position (cm)"),
    ("ntracks", "int32", "number of tracks of the vertex"),
    ("charge", "int32", "sum of the charges of the tracks of the vertex"),
]

_JETSVS = [
    ("jetIdx", "int32", "index of the jet in Jet"),
    ("sVIdx", "int32", "index of the vertex in SV"),
]

_MET_PV = [
    ("MET_pt", "float32", "PF MET: -(vector sum of all PF candidates), magnitude (GeV)"),
    ("MET_phi", "float32", "PF MET azimuthal angle"),
    ("PuppiMET_pt", "float32", "PUPPI MET: -(vector sum of puppiWeight * PF candidates), magnitude (GeV)"),
    ("PuppiMET_phi", "float32", "PUPPI MET azimuthal angle"),
    ("GenMET_pt", "float32", "generator MET: vector sum of the neutrinos, magnitude (GeV)"),
    ("GenMET_phi", "float32", "generator MET azimuthal angle"),
    ("PV_npvs", "int32", "number of reconstructed primary vertices"),
    ("PV_x", "float32", "primary vertex x (cm)"),
    ("PV_y", "float32", "primary vertex y (cm)"),
    ("PV_z", "float32", "primary vertex z (cm)"),
]

#: jagged collections: name -> list of (field, dtype, doc), in branch order
_COLLECTION_SPECS: dict[str, list[tuple[str, str, str]]] = {
    "PFCands": _PFCANDS,
    "Jet": _JET,
    "JetPFCands": _JETPFCANDS,
    "SV": _SV,
    "JetSVs": _JETSVS,
}


def counter_name(collection: str) -> str:
    """NanoAOD counter branch of a collection: ``Jet`` -> ``nJet``."""
    return "n" + collection


def _build() -> dict[str, Branch]:
    out: dict[str, Branch] = {}
    for name, dtype, doc in _EVENT:
        out[name] = Branch(name, dtype, doc)
    for coll, fields in _COLLECTION_SPECS.items():
        cname = counter_name(coll)
        out[cname] = Branch(cname, "int32", f"number of {coll} entries in the event")
        for field, dtype, doc in fields:
            name = f"{coll}_{field}"
            out[name] = Branch(name, dtype, doc, coll)
    for name, dtype, doc in _MET_PV:
        out[name] = Branch(name, dtype, doc)
    return out


#: every branch of the ``Events`` tree, in writing order
BRANCHES: dict[str, Branch] = _build()

#: jagged collections and their counter branches
COLLECTIONS: dict[str, str] = {coll: counter_name(coll) for coll in _COLLECTION_SPECS}


def branch_names() -> tuple[str, ...]:
    """All branch names, in writing order."""
    return tuple(BRANCHES)


def collection_fields(collection: str) -> dict[str, str]:
    """``{field: dtype}`` of one jagged collection (``"Jet"`` -> ``{"pt": "float32", ...}``)."""
    if collection not in _COLLECTION_SPECS:
        raise KeyError(f"unknown collection {collection!r}; known: {sorted(_COLLECTION_SPECS)}")
    return {field: dtype for field, dtype, _ in _COLLECTION_SPECS[collection]}
