"""DQM anomaly scoring per luminosity section with the DIALS NMF model (issue 10).

:mod:`.model` (the model: per-bin min-max + NMF, ``predict`` -> reconstruction and MSE; :func:`~.model.score`, the
one call of both twins), :mod:`.direct_producer` (the joblib model in-process), :mod:`.sonic_producer` (the same
model on MLServer through the SONIC client), :mod:`.cff` (``add()``: direct by default, swapped by the
``dqmNMFSonic`` modifier), :mod:`.report` (``python -m framework dqm-report``), :mod:`.dqmio` (elements read back
from a DQM output), :mod:`.synthetic` (generated METSig elements for training and tests).
"""
