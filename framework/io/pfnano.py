"""PFNano flavours: which layout of PF-candidate branches an input file has, and the canonical branches
(:mod:`framework.io.schema`) derived for a file that lacks them.

Two flavours are known, recognised from the branch names:

* ``generated``: this framework's schema (``python -m framework generate``), every canonical branch stored;
* ``pfnano-released``: PFNano as CMS analyses use it (cms-jet/PFNano ``python/addPFCands_cff.py`` for
  ``PFCands_*``, ``plugins/JetConstituentTableProducer.cc`` for ``JetPFCands_*``/``JetSVs_*``), which has no
  ``JetPFCands_btagSip2dVal/Sig``, ``PFCands_fromPV`` or ``PFCands_hcalFraction``.

For a released file, :class:`framework.io.source.RootSource` supplies the missing canonical branches as
columns computed per chunk by the derivations below (one function each, with the CMSSW code it follows);
they are not input branches (``branchNames()`` does not list them, outputs do not copy them). ``d0`` and
``dz``, which the released layout stores in another convention, are read converted (see below).
:func:`write_released` writes a released-flavour file from a generated one (tests, and
``python -m framework generate --flavour pfnano-released``).

PFNano stores the track quantities only for candidates with track details
(``?hasTrackDetails()?dxy():-1`` etc.): ``d0``, ``d0Err``, ``dz``, ``dzErr``, ``trkChi2`` and ``vtxChi2`` are
-1 for neutral candidates and for charged ones packed without track details (PATPackedCandidateProducer
stores them for ``pt > 0.5`` GeV), and their ``JetPFCands_btag*`` link features are 0. The reader reads
``d0`` and ``dz`` of those candidates as 0 (:func:`derive_packed_ip`) and passes the rest on as stored.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..exceptions import InputError
from .chunk import Column
from .schema import BRANCHES, COLLECTIONS, TREE_NAME

__all__ = [
    "Derivation",
    "Flavour",
    "FLAVOURS",
    "GENERATED",
    "RELEASED",
    "CANDIDATE_PREFIXES",
    "has_candidates",
    "recognise",
    "plan",
    "unknown_flavour_message",
    "derive_sip2d",
    "derive_from_pv",
    "derive_hcal_fraction",
    "derive_packed_ip",
    "write_released",
]

log = logging.getLogger(__name__)

CANDIDATE_PREFIXES = ("PFCands_", "JetPFCands_")

#: PFCands fields of released PFNano (addPFCands_cff.py: CandVars + the track and PUPPI variables)
RELEASED_PFCANDS = (
    "pt", "eta", "phi", "mass", "charge", "pdgId", "d0", "d0Err", "dz", "dzErr", "trkChi2", "vtxChi2",
    "puppiWeight", "puppiWeightNoLep", "lostInnerHits", "pvAssocQuality", "trkQuality",
)
#: JetPFCands fields of released PFNano (JetConstituentTableProducer with readBtag)
RELEASED_JETPFCANDS = (
    "jetIdx", "pFCandsIdx", "btagEtaRel", "btagPtRatio", "btagPParRatio", "btagSip3dVal", "btagSip3dSig",
    "btagJetDistVal",
)
#: released fields this framework never reads: a file without them is still recognised
_RELEASED_OPTIONAL = ("PFCands_vtxChi2", "PFCands_puppiWeightNoLep", "PFCands_lostInnerHits")

# ------------------------------------------------------------------------------- constants (CMSSW)
#: pat::PackedCandidate::PVAssociationQuality
_USED_IN_FIT_LOOSE = 6
_USED_IN_FIT_TIGHT = 7
#: pat::PackedCandidate::PVAssoc (fromPV)
_NO_PV, _PV_LOOSE, _PV_TIGHT, _PV_USED_IN_FIT = 0, 1, 2, 3
#: PhysicsTools/PatAlgos/python/slimming/primaryVertexAssociation_cfi.py (the MiniAOD association):
#: a track is dz-compatible with a vertex if |dz| < maxDzForPrimaryAssignment OR
#: |dz|/dzErr < maxDzSigForPrimaryAssignment
_MAX_DZ_FOR_PRIMARY = 0.03  # cm
_MAX_DZ_SIG_FOR_PRIMARY = 5.0
#: PATPackedCandidateProducer: track details (and so PFNano's d0/dz/...) only above this pt
_TRACK_DETAILS_MIN_PT = 0.5


# ------------------------------------------------------------------------------------ derivations
def _link_index(links: Column, target: Column, idx: Column) -> tuple[np.ndarray, np.ndarray]:
    """For every link (``JetPFCands`` entry): the flat index into *target*'s content of the entry that the
    event-local index *idx* (``pFCandsIdx``, ``jetIdx``) names, and whether that index is valid."""
    counts = np.diff(links.offsets)
    event = np.repeat(np.arange(len(counts)), counts)
    local = idx.content.astype(np.int64, copy=False)
    valid = (local >= 0) & (local < np.diff(target.offsets)[event])
    flat = target.offsets[:-1][event] + np.where(valid, local, 0)
    return flat, valid


def derive_sip2d(d0: np.ndarray, d0_err: np.ndarray, charge: np.ndarray, cand_phi: np.ndarray,
                 jet_phi: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(btagSip2dVal, btagSip2dSig)`` (float32) of links from the linked candidate's ``d0``, ``d0Err``,
    ``charge``, ``phi`` and the jet's ``phi`` (arrays of the same length, one entry per link).

    CMSSW (RecoBTag/FeatureTools/src/TrackInfoBuilder.cc, ``buildTrackInfo``) takes
    ``IPTools::signedTransverseImpactParameter`` (TrackingTools/IPTools/src/IPTools.cc) w.r.t. the PV: the
    transverse distance of the track's point of closest approach (``|d0|``; PFNano stores
    ``PackedCandidate::dxy()``, w.r.t. the associated PV, the same for PV tracks), signed +1 when
    ``IPVec . jet >= 0`` with ``IPVec`` its transverse displacement. With the dxy convention of
    reco::Track / PackedCandidate the displacement is ``d0 * (-sin phi, cos phi)``, so the sign is that of
    ``d0 * sin(jet phi - candidate phi)``: computable from stored quantities, unlike the 3D sign of
    ``btagSip3dVal``, which differs from it for many prompt tracks. The significance is
    ``Sip2dVal / d0Err``; CMSSW's error also holds the PV position error, which PFNano does not store.
    Candidates without a track (neutral, or ``d0Err <= 0``: PFNano's -1 for no track details) get 0, as
    TrackInfoBuilder gives them.
    """
    d0 = np.asarray(d0, np.float64)
    d0_err = np.asarray(d0_err, np.float64)
    track = (np.asarray(charge) != 0) & (d0_err > 0) & np.isfinite(d0)
    if valid is not None:
        track &= valid
    dphi = np.asarray(jet_phi, np.float64) - np.asarray(cand_phi, np.float64)
    sign = np.where(d0 * np.sin(dphi) >= 0, 1.0, -1.0)
    val = np.where(track, sign * np.abs(d0), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sig = np.where(track, val / np.where(track, d0_err, 1.0), 0.0)
    return val.astype(np.float32), sig.astype(np.float32)


def derive_from_pv(charge: np.ndarray, pdg_id: np.ndarray, quality: np.ndarray, dz: np.ndarray,
                   dz_err: np.ndarray, puppi_weight: np.ndarray) -> np.ndarray:
    """``PFCands_fromPV`` (int32) from ``pvAssocQuality`` and the candidate's dz w.r.t. the first PV.

    Follows ``pat::PackedCandidate::fromPV(0)`` (DataFormats/PatCandidates/interface/PackedCandidate.h)::

        if quality == UsedInFitTight(7) and vertexRef is PV 0: PVUsedInFit (3)
        if vertexRef is PV 0 or |pdgId| in (11, 13):         PVTight (2)
        if quality < UsedInFitLoose(6):                      PVLoose (1)
        else:                                                NoPV (0)

    PFNano does not store ``vertexRef`` (which vertex the candidate is associated with); it is estimated:

    * neutral candidates: PV 0 (PATPackedCandidateProducer gives every neutral PV 0 and UsedInFitTight,
      so they are PVUsedInFit);
    * charged with track details: PV 0 when dz-compatible with it, with the cuts of the MiniAOD
      association (PhysicsTools/PatAlgos/python/slimming/primaryVertexAssociation_cfi.py:
      ``|dz| < maxDzForPrimaryAssignment = 0.03`` cm OR ``|dz|/dzErr < maxDzSigForPrimaryAssignment = 5``;
      PFNano's ``dz`` is ``PackedCandidate::dz()``, i.e. w.r.t. PV 0);
    * charged without track details (dz, dzErr stored as -1): PV 0 when ``puppiWeight > 0.5``
      (CommonTools/PileupAlgos PuppiProducer gives charged candidates weight 1 when it associates them with
      the PV and 0 otherwise).

    Two clauses of ``fromPV`` need what PFNano lacks and are left out: PVTight for CompatibilityBTag tracks
    closer in dz to PV 0 than to their vertex (``dzAssociatedPV``), and PVLoose for vertices with
    ``ndof < 4``.
    """
    charge = np.asarray(charge)
    quality = np.asarray(quality)
    dz = np.asarray(dz, np.float64)
    dz_err = np.asarray(dz_err, np.float64)
    charged = charge != 0
    details = dz_err > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        dz_sig = np.abs(dz) / np.where(details, dz_err, 1.0)
    compatible = details & ((np.abs(dz) < _MAX_DZ_FOR_PRIMARY) | (dz_sig < _MAX_DZ_SIG_FOR_PRIMARY))
    at_pv = ~charged | compatible | (~details & (np.asarray(puppi_weight) > 0.5))
    lepton = np.isin(np.abs(np.asarray(pdg_id)), (11, 13))
    out = np.select(
        [at_pv & (quality == _USED_IN_FIT_TIGHT), at_pv | lepton, quality < _USED_IN_FIT_LOOSE],
        [_PV_USED_IN_FIT, _PV_TIGHT, _PV_LOOSE],
        default=_NO_PV,
    )
    return out.astype(np.int32)


def derive_hcal_fraction(pdg_id: np.ndarray) -> np.ndarray:
    """``PFCands_hcalFraction`` (float32) from the candidate type: 1 for neutral hadrons (|pdgId| 130) and
    HF hadrons (1), 0 for every other candidate.

    CMSSW (PhysicsTools/PatAlgos/plugins/PATPackedCandidateProducer.cc) stores, for |pdgId| 1 and 130,
    ``hcalEnergy / (ecalEnergy + hcalEnergy)`` of the PF candidate, and 0 for the others (isolated charged
    hadrons aside; newer releases also fill charged and photon candidates above 0.5 GeV, which ParT does not
    read: NeutralCandidateConverter uses ``hcalFraction`` of neutral candidates only). PFNano keeps no
    calorimeter energies, so the value of a neutral hadron is its pure-HCAL limit, 1: a PF neutral hadron is
    an HCAL deposit not explained by tracks, and its ECAL share is what is lost. Photons (22) and HF EM
    candidates (2) are ECAL(-like) deposits: 0.
    """
    apdg = np.abs(np.asarray(pdg_id))
    return np.where((apdg == 130) | (apdg == 1), 1.0, 0.0).astype(np.float32)


def derive_packed_ip(value: np.ndarray, error: np.ndarray) -> np.ndarray:
    """``PFCands_d0`` / ``PFCands_dz`` (float32) as CMSSW's consumers read them (``PackedCandidate::dxy()``,
    ``dz()``), from PFNano's value and its error: where PFNano wrote -1 for a candidate without track
    details (``?hasTrackDetails()?dxy():-1``, marked by the error's -1), 0.

    ``dxy()`` and ``dz()`` exist for every packed candidate (DeepMETProducer reads them for all of them):
    neutral candidates are placed at PV 0 (PATPackedCandidateProducer), so theirs are exactly 0, as in our
    schema; charged candidates packed without track details (below 0.5 GeV) have a value that PFNano does
    not keep, and 0 (compatible with the PV) stands for it. Errors, track chi2 and quality exist in CMSSW
    only with track details and are passed on as stored, so the conversion loses nothing: ``d0Err``/``dzErr``
    keep PFNano's -1 marker (an output that keeps ``PFCands_d0`` writes the converted values).
    """
    value = np.asarray(value)
    return np.where(np.asarray(error) < 0, 0.0, value).astype(np.float32)


def _gather(column: Column, flat: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``column``'s content at the flat indices *flat* (0 where not *valid*)."""
    out = np.zeros(len(flat), column.content.dtype)
    out[valid] = column.content[flat[valid]]
    return out


def _sip2d_columns(cols: Mapping[str, Column]) -> tuple[Column, Column]:
    links = cols["JetPFCands_pFCandsIdx"]
    cand, cand_ok = _link_index(links, cols["PFCands_d0"], links)
    jet, jet_ok = _link_index(links, cols["Jet_phi"], cols["JetPFCands_jetIdx"])
    d0, d0_err, charge, phi = (_gather(cols[f"PFCands_{f}"], cand, cand_ok) for f in ("d0", "d0Err", "charge", "phi"))
    val, sig = derive_sip2d(d0, d0_err, charge, phi, _gather(cols["Jet_phi"], jet, jet_ok), cand_ok & jet_ok)
    return Column(val, links.offsets), Column(sig, links.offsets)


def _sip2d_val(cols: Mapping[str, Column]) -> Column:
    return _sip2d_columns(cols)[0]


def _sip2d_sig(cols: Mapping[str, Column]) -> Column:
    return _sip2d_columns(cols)[1]


def _from_pv(cols: Mapping[str, Column]) -> Column:
    c = cols["PFCands_charge"]
    content = derive_from_pv(c.content, cols["PFCands_pdgId"].content, cols["PFCands_pvAssocQuality"].content,
                             cols["PFCands_dz"].content, cols["PFCands_dzErr"].content,
                             cols["PFCands_puppiWeight"].content)
    return Column(content, c.offsets)


def _packed_ip(field: str) -> Callable[[Mapping[str, Column]], Column]:
    def compute(cols: Mapping[str, Column]) -> Column:
        c = cols[f"PFCands_{field}"]
        return Column(derive_packed_ip(c.content, cols[f"PFCands_{field}Err"].content), c.offsets)

    return compute


def _hcal_fraction(cols: Mapping[str, Column]) -> Column:
    c = cols["PFCands_pdgId"]
    return Column(derive_hcal_fraction(c.content), c.offsets)


# --------------------------------------------------------------------------------------- flavours
@dataclass(frozen=True)
class Derivation:
    """A canonical branch computed from other branches of the same chunk."""

    branch: str
    inputs: tuple[str, ...]
    compute: Callable[[Mapping[str, Column]], Column]
    summary: str
    #: the flavour stores a branch of this name in another convention, which this derivation converts
    replaces: bool = False

    def __post_init__(self) -> None:
        assert self.branch in BRANCHES, self.branch


@dataclass(frozen=True)
class Flavour:
    """A layout of PF-candidate branches: the ``PFCands_*``/``JetPFCands_*`` branches that identify it and
    the canonical branches it derives."""

    name: str
    description: str
    signature: tuple[str, ...]
    derivations: tuple[Derivation, ...] = ()

    def derivation(self, branch: str) -> Derivation | None:
        return next((d for d in self.derivations if d.branch == branch), None)


_SIP2D_INPUTS = ("JetPFCands_pFCandsIdx", "JetPFCands_jetIdx", "PFCands_d0", "PFCands_d0Err", "PFCands_charge",
                 "PFCands_phi", "Jet_phi")
_SIP2D_TEXT = "|d0| of the linked candidate, signed by the jet direction as IPTools::signedTransverseImpactParameter"

GENERATED = Flavour(
    "generated",
    "this framework's schema, from python -m framework generate",
    tuple(n for n in BRANCHES if n.startswith(CANDIDATE_PREFIXES)),
)

RELEASED = Flavour(
    "pfnano-released",
    "PFNano as released, cms-jet/PFNano addPFCands_cff.py",
    tuple(f"PFCands_{f}" for f in RELEASED_PFCANDS if f"PFCands_{f}" not in _RELEASED_OPTIONAL)
    + tuple(f"JetPFCands_{f}" for f in RELEASED_JETPFCANDS),
    (
        Derivation("JetPFCands_btagSip2dVal", _SIP2D_INPUTS, _sip2d_val, _SIP2D_TEXT),
        Derivation("JetPFCands_btagSip2dSig", _SIP2D_INPUTS, _sip2d_sig, "btagSip2dVal / d0Err of the linked candidate"),
        Derivation(
            "PFCands_fromPV",
            ("PFCands_charge", "PFCands_pdgId", "PFCands_pvAssocQuality", "PFCands_dz", "PFCands_dzErr",
             "PFCands_puppiWeight"),
            _from_pv,
            "pat::PackedCandidate::fromPV from pvAssocQuality, with the PV association estimated from dz",
        ),
        Derivation("PFCands_hcalFraction", ("PFCands_pdgId",), _hcal_fraction,
                   "1 for neutral hadrons (pdgId 130, 1), 0 otherwise"),
        Derivation("PFCands_d0", ("PFCands_d0", "PFCands_d0Err"), _packed_ip("d0"),
                   "PFNano's -1 for candidates without track details read as 0, CMSSW's dxy() of neutrals",
                   replaces=True),
        Derivation("PFCands_dz", ("PFCands_dz", "PFCands_dzErr"), _packed_ip("dz"),
                   "PFNano's -1 for candidates without track details read as 0, CMSSW's dz() of neutrals",
                   replaces=True),
    ),
)

#: known flavours, in recognition order (the generated one has every canonical branch)
FLAVOURS: tuple[Flavour, ...] = (GENERATED, RELEASED)


def has_candidates(branches: Iterable[str]) -> bool:
    """Whether any branch is a PF candidate or candidate-link branch."""
    return any(b.startswith(CANDIDATE_PREFIXES) for b in branches)


def recognise(branches: Iterable[str]) -> Flavour | None:
    """The first known flavour whose signature branches are all in *branches*; None if none is."""
    have = set(branches)
    return next((f for f in FLAVOURS if all(b in have for b in f.signature)), None)


def plan(branches: Iterable[str], wanted: Iterable[str]) -> tuple[dict[str, Derivation], list[str]]:
    """Of the *wanted* branches: ``({name: derivation}, [missing])``, the derivations for those the file
    lacks (or stores in another convention) and those that can be neither read nor derived. A branch is
    derived only when the file's flavour derives it and the file has the derivation's inputs."""
    branches = list(branches)
    have = set(branches)
    flavour = recognise(branches)
    derived: dict[str, Derivation] = {}
    missing: list[str] = []
    for name in wanted:
        d = flavour.derivation(name) if flavour else None
        if name in have and (d is None or not d.replaces):
            continue  # read as stored
        if d is not None and all(i in have for i in d.inputs):
            derived[name] = d
        elif name not in have:
            missing.append(name)
    return derived, missing


def _grouped(names: Iterable[str], limit: int = 20) -> str:
    """``PFCands_{pt, eta}, JetPFCands_{jetIdx}``: candidate branch names, short."""
    groups: dict[str, list[str]] = {}
    for n in names:
        coll, _, field = n.partition("_")
        groups.setdefault(coll, []).append(field)
    parts = []
    for coll, fields in groups.items():
        shown = ", ".join(fields[:limit]) + (f", ... ({len(fields) - limit} more)" if len(fields) > limit else "")
        parts.append(f"{coll}_{{{shown}}}")
    return ", ".join(parts) or "none"


def unknown_flavour_message(path: str, tree_name: str, branches: Iterable[str], needed: list[str],
                            users: Mapping[str, list[str]] | None = None) -> str:
    """The error for a file with PF candidates in no known flavour: which candidate branches it has, which
    each known flavour would need, and how to fix it."""
    branches = list(branches)
    have = set(branches)
    cands = [b for b in branches if b.startswith(CANDIDATE_PREFIXES)]
    first = needed[0]
    who = f" (needed by module {', '.join(users[first])})" if users and users.get(first) else ""
    lacking = "; ".join(
        f"'{f.name}' ({f.description}) lacks {_grouped([b for b in f.signature if b not in have], 8)}"
        for f in FLAVOURS
    )
    return (
        f"tree '{tree_name}' of {path} has PF candidates, but in no known PFNano flavour, so branch "
        f"'{first}'{who} can be neither read nor derived ({len(needed)} such branches). Its candidate branches: "
        f"{_grouped(cands, 12)}. Of the known flavours, {lacking}. Fix: use a file in one of these layouts "
        "(python -m framework generate writes both, --flavour pfnano-released for the second) or add the "
        "missing branches."
    )


# ------------------------------------------------------------------------------------------ writing
def _has_track_details(charge: np.ndarray, pt: np.ndarray) -> np.ndarray:
    """PATPackedCandidateProducer stores track details (setTrackProperties) for charged candidates above
    0.5 GeV (full precision above minPtForTrackProperties); PFNano writes -1 for the others."""
    return (charge != 0) & (pt > _TRACK_DETAILS_MIN_PT)


def _released_chunk(a: Mapping[str, object]) -> dict[str, object]:
    """One chunk of a generated file (awkward arrays by branch) in the released layout."""
    import awkward as ak

    pf = {f: a[f"PFCands_{f}"] for f in ("pt", "eta", "phi", "mass", "charge", "pdgId", "d0", "d0Err", "dz",
                                          "dzErr", "trkChi2", "puppiWeight", "pvAssocQuality", "trkQuality")}
    details = _has_track_details(pf["charge"], pf["pt"])
    minus1 = np.float32(-1.0)
    for f in ("d0", "d0Err", "dz", "dzErr", "trkChi2"):
        pf[f] = ak.values_astype(ak.where(details, pf[f], minus1), np.float32)
    pf["vtxChi2"] = ak.values_astype(ak.where(details, np.float32(0.0), minus1), np.float32)  # vertexChi2() is 0
    pf["trkQuality"] = ak.values_astype(ak.where(details, pf["trkQuality"], 0), np.int32)
    lepton = (abs(pf["pdgId"]) == 11) | (abs(pf["pdgId"]) == 13)
    # PATPackedCandidateProducer: leptons are not in the no-lepton PUPPI collection, their weight is 1
    pf["puppiWeightNoLep"] = ak.values_astype(ak.where(lepton, np.float32(1.0), pf["puppiWeight"]), np.float32)
    # plausible pattern (not read by the framework): a hit in the first pixel layer (-1) for prompt tracks
    pf["lostInnerHits"] = ak.values_astype(ak.where(details & (abs(pf["d0"]) < 0.1), -1, 0), np.int32)
    pf = {f: pf[f] for f in RELEASED_PFCANDS}

    links = {f: a[f"JetPFCands_{f}"] for f in RELEASED_JETPFCANDS}
    # TrackInfoBuilder (through JetConstituentTableProducer) gives 0 to candidates without track details
    local = a["JetPFCands_pFCandsIdx"]
    link_details = details[local]
    for f in RELEASED_JETPFCANDS[2:]:
        links[f] = ak.values_astype(ak.where(link_details, links[f], np.float32(0.0)), np.float32)

    out: dict[str, object] = {}
    for name, br in BRANCHES.items():
        if br.collection is None and name not in COLLECTIONS.values():
            out[name] = a[name]
    for coll in ("Jet", "SV", "JetSVs"):
        out[coll] = ak.zip({b[len(coll) + 1:]: a[b] for b, br in BRANCHES.items() if br.collection == coll})
    out["PFCands"] = ak.zip(pf)
    out["JetPFCands"] = ak.zip(links)
    return out


def _item_type(array: object) -> object:
    """The uproot ``mktree`` type of one entry of *array* (numpy dtype or awkward type)."""
    import awkward as ak

    item = ak.type(array).content
    return np.dtype(str(item)) if isinstance(item, ak.types.NumpyType) else item


def write_released(src: str | os.PathLike, dst: str | os.PathLike, *, step: int = 500) -> None:
    """Write the generated file *src* in the layout of PFNano as released to *dst* (atomically): the
    ``PFCands_*`` and ``JetPFCands_*`` branches of :data:`RELEASED_PFCANDS`, :data:`RELEASED_JETPFCANDS`
    (no ``fromPV``, ``hcalFraction``, ``btagSip2d*``), PFNano's -1 for the track quantities of candidates
    without track details, and the other branches (event, ``Jet_*``, ``SV_*``, ``JetSVs_*``, MET, PV) as
    they are. ``vtxChi2``, ``puppiWeightNoLep`` and ``lostInnerHits``, which the generator does not make,
    get CMSSW's values where they follow from the candidate (0/-1, the PUPPI weight with leptons at 1) and
    a plausible pattern otherwise."""
    import uproot

    target = Path(dst)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = str(target.parent / f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    names = [n for n in BRANCHES if n not in COLLECTIONS.values()]
    try:
        with uproot.open(src) as fin, uproot.recreate(tmp) as fout:
            tree = fin[TREE_NAME]
            missing = [n for n in names if n not in tree]
            if missing:
                raise InputError(f"{src} is not a generated file: it lacks {len(missing)} branches, e.g. {missing[:3]}")
            blocks = (tree.iterate(names, step_size=step, library="ak") if tree.num_entries
                      else [tree.arrays(names, entry_stop=0, library="ak")])
            out = None
            for a in blocks:
                chunk = _released_chunk({n: a[n] for n in names})
                if out is None:  # NanoAOD layout: nPFCands counters and PFCands_pt-style branches
                    out = fout.mktree(TREE_NAME, {k: _item_type(v) for k, v in chunk.items()}, title="PFNano as released")
                if len(chunk["run"]):
                    out.extend(chunk)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    log.info("wrote %s in the PFNano-as-released layout (from %s)", target, src)
