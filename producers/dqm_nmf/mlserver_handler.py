"""MLServer handler of the DQM NMF anomaly models, the one implementation every packaged model names (DIALS style:
each ``model-settings.json`` says ``"implementation": "producers.dqm_nmf.mlserver_handler.NMFHandler"``; the local
MLServer the framework starts has the repository on ``PYTHONPATH``, see :mod:`framework.server.mlserver`; by hand:
``PYTHONPATH=. mlserver start data/models/dqmNMF``). Only MLServer imports this module (never framework code,
which imports tritonclient: the two protobuf builds clash).

Input ``input_0`` FP32 [-1, bins] (one row of histogram contents per luminosity section); outputs ``output_0``
FP64 [-1, features] (the reconstruction of the model's cells) and ``output_1`` FP64 [-1] (the per-row mean squared
error). The rows are cast
to float64 here, as the dism-examples handlers do: the NMF was fitted in float64 and refuses FP32. The model and
its scoring function are the project's (``producers.dqm_nmf.model``), the same ones the direct twin calls.
"""

from __future__ import annotations

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri

from .model import INPUT_NAME, MODEL_FILE, OUTPUT_MSE, OUTPUT_RECONSTRUCTION, load, score


class NMFHandler(MLModel):
    """Loads ``model.joblib`` (parameters.uri) and answers ``predict`` with the reconstruction and the MSE."""

    async def load(self) -> bool:
        uri = await get_model_uri(self._settings, wellknown_filenames=[MODEL_FILE])
        self._model = load(uri)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        given = [i.name for i in payload.inputs]
        if INPUT_NAME not in given:
            raise InferenceError(f"model '{self.name}' takes one input '{INPUT_NAME}' [-1, {self._model.n_bins}] "
                                 f"FP32, got {given}")
        request_input = payload.inputs[given.index(INPUT_NAME)]
        rows = NumpyCodec.decode_input(request_input)
        reconstruction, mse = score(self._model, rows)  # float64 inside
        metric = NumpyCodec.encode_output(OUTPUT_MSE, mse)
        metric.shape = list(mse.shape)  # [-1] as declared (the codec would make a 1D array [n, 1])
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output(OUTPUT_RECONSTRUCTION, reconstruction), metric],
        )
