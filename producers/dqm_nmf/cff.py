"""Config fragment: the DQM NMF anomaly score per luminosity section, direct by default, swapped for its MLServer
twin by the ``dqmNMFSonic`` modifier (same label, same lumi products)::

    from producers.dqm_nmf import cff as dqmnmf
    dqmnmf.add(process, "dqmNMF", src="dqmMET:JetMET/MET/pfMETT1/Cleaned/METSig")   # after the DQM module

A model folder is MLServer's DIALS package: ``model.joblib``, ``threshold.json``, ``model-settings.json``,
``settings.json`` and the handler module (``scripts/train_dqm_nmf.py`` writes it).
"""

from __future__ import annotations

import os

import framework.config as cms
from framework.config.types import plain
from framework.ml.twins import DEFAULT_CLIENT

from .common import COMMON_PARAMETERS
from .model import MODEL_FILE, THRESHOLD_FILE
from .modifiers import dqmNMFSonic

DEFAULT_MODEL_DIR = "data/models/dqmNMF"
DEFAULT_LABEL = "dqmNMF"
#: the scorers configs/dqm_cfg.py books: label -> model folder (its threshold.json names the element it scores)
MODEL_DIRS = {DEFAULT_LABEL: DEFAULT_MODEL_DIR, "dqmNMFJetOcc": "data/models/dqmNMFJetOcc",
              "dqmNMFMETPuppi": "data/models/dqmNMFMETPuppi"}


def model_dir_for(label: str) -> str:
    """The model folder of the scorer *label*: the bundled one of :data:`MODEL_DIRS`, else ``data/models/<label>``
    (a packaged model is served under its folder's name, which the configs use as the label)."""
    return MODEL_DIRS.get(label, f"data/models/{label}")
SONIC_CLIENT = {**DEFAULT_CLIENT, "mode": "Sync"}  # the lumi transition waits for the answer anyway


def direct(src: str, model_dir: str = DEFAULT_MODEL_DIR, **params) -> cms.EDProducer:
    """The in-process producer of the model in *model_dir*, scoring the element *src* ('label:ME path')."""
    return cms.EDProducer("DQMNMFProducer", src=cms.string(src),
                          model_path=cms.string(os.path.join(model_dir, MODEL_FILE)),
                          thresholdFile=cms.string(os.path.join(model_dir, THRESHOLD_FILE)), **params)


def sonic_twin(decl: cms.EDProducer, **client) -> cms.EDProducer:
    """The MLServer twin of a direct declaration: same parameters, the model of its folder served under the
    folder's name (by a local MLServer on that folder when no given server has it)."""
    model_dir = os.path.dirname(plain(decl.model_path))
    settings = dict(SONIC_CLIENT, modelName=os.path.basename(os.path.normpath(model_dir)))
    settings.update(client)
    params = {k: v for k, v in decl.parameters_().items() if k in COMMON_PARAMETERS}
    return cms.EDProducer("DQMNMFSonicProducer", Client=cms.PSet(**settings),
                          modelSettings=cms.string(os.path.join(model_dir, "model-settings.json")), **params)


def add(process: cms.Process, label: str = DEFAULT_LABEL, src: str = "", model_dir: str = DEFAULT_MODEL_DIR,
        **params) -> cms.Task:
    """Attach the scorer (label *label*) of the element *src* to *process*, register its MLServer swap with the
    modifier, and return a Task holding it. Put it after the DQM module that makes *src* (lumi transitions run in
    configuration order)."""
    setattr(process, label, direct(src, model_dir, **params))
    module = getattr(process, label)
    dqmNMFSonic.toReplaceWith(module, sonic_twin(module))
    return cms.Task(module)
