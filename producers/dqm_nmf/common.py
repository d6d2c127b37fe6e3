"""What the DQM NMF twins share: parameters, the model input of a luminosity section and the products.

Both read one monitoring element per luminosity section at ``endLuminosityBlock`` (``src`` = ``"label:ME path"``,
the lumi product of the DQM module, e.g. ``dqmMET:JetMET/MET/pfMETT1/Cleaned/METSig``), score it -- in-process or
on MLServer -- and put two lumi products under their label: ``mse`` (float64, the reconstruction error) and
``flag`` (bool, ``mse > threshold``). The output writes them as ``<label>_mse`` and ``<label>_flag`` in the
``LuminosityBlocks`` tree.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from framework.core.params import Required
from framework.exceptions import ConfigurationError
from framework.paths import locate

from .model import Threshold, as_model_input

log = logging.getLogger(__name__)

COMMON_PARAMETERS: dict[str, Any] = {
    "src": Required(str, "the monitoring element: 'label:ME path' of the DQM module's lumi product"),
    "threshold": -1.0,  # < 0: the threshold fixed at training (thresholdFile)
    "thresholdFile": "data/models/dqmNMF/threshold.json",
}


class DQMNMFCommon:
    """Mixin of the two producers: threshold, model input, products."""

    label: str
    params: Any

    def resolveThreshold(self) -> float:
        """``threshold`` when given (>= 0), else the one in ``thresholdFile`` (written by the training); notes
        whether the model reads the element's flow bins (``flow`` of the file)."""
        self.flow = False
        try:
            info = Threshold.read(locate(self.params.thresholdFile))
        except (FileNotFoundError, KeyError, ValueError) as exc:
            if self.params.threshold >= 0:
                return float(self.params.threshold)
            raise ConfigurationError(f"module '{self.label}': thresholdFile {self.params.thresholdFile!r}: {exc}. "
                                     "Train the model (scripts/train_dqm_nmf.py) or give threshold=") from exc
        self.flow = info.flow
        return float(self.params.threshold) if self.params.threshold >= 0 else info.threshold

    def modelInput(self, lumi: Any) -> np.ndarray:
        """The section's element as ``input_0``: FP32 [1, bins] (with its flow bins when the model's
        ``threshold.json`` says ``flow``)."""
        return as_model_input(lumi.get(self.params.src), getattr(self, "flow", False))

    def putScore(self, lumi: Any, mse: float, threshold: float) -> None:
        mse = float(mse)
        if not math.isfinite(mse):
            log.warning("module '%s': %s: MSE is %s (empty element?); flagged", self.label, lumi.where(), mse)
        lumi.put(np.float64(mse), "mse")
        lumi.put(np.bool_(not mse <= threshold), "flag")
