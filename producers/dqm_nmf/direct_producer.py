"""The DQM NMF model run in-process (the *direct* twin): ``model.joblib`` loaded once per label, scored at the end
of each luminosity section."""

from __future__ import annotations

from typing import Any

from framework.core.module import EDProducer
from framework.core.registry import register
from framework.exceptions import ConfigurationError
from framework.paths import locate

from .common import COMMON_PARAMETERS, DQMNMFCommon
from .model import load, score


@register("DQMNMFProducer")
class DQMNMFProducer(DQMNMFCommon, EDProducer):
    """Scores ``src`` per luminosity section with the joblib model at ``model_path``; lumi products ``mse`` and
    ``flag`` (see :mod:`.common`). Nothing per event."""

    parameters = {**COMMON_PARAMETERS, "model_path": "data/models/dqmNMF/model.joblib"}

    @classmethod
    def initializeGlobalCache(cls, params: Any) -> Any:
        path = locate(params.model_path)
        try:
            return load(path)
        except FileNotFoundError as exc:
            raise ConfigurationError(f"DQMNMFProducer: model_path {params.model_path!r} not found ({exc.strerror}). "
                                     "Train it with scripts/train_dqm_nmf.py or point model_path at a model.joblib"
                                     ) from exc
        except (TypeError, ValueError, ImportError) as exc:
            raise ConfigurationError(f"DQMNMFProducer: cannot load {path}: {exc}") from exc

    def beginJob(self) -> None:
        self.threshold = self.resolveThreshold()

    def produce(self, event: Any) -> None:
        pass

    def endLuminosityBlock(self, lumi: Any) -> None:
        x = self.modelInput(lumi)
        with self.timed("inference"):
            _, mse = score(self.globalCache, x)
        self.putScore(lumi, mse[0], self.threshold)
