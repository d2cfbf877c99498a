"""The MLflow model, logged as code (models-from-code): a thin pyfunc over ``training.predict.Predictor``.

MLflow copies the ``training`` package next to this file (``code_paths``) and the bundle directory as an
artifact, so a loaded model predicts with exactly the code, tokenizer, schema and thresholds it was logged
with. Input: a DataFrame with a ``text`` column (or a list of strings). Output: one flat row per text,
columns ``training.predict.flat_columns()``.
"""

from __future__ import annotations

import warnings

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

# The input is a DataFrame of texts; its signature comes from the logged input example, not type hints.
warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method.*")


class FrontlineModel(PythonModel):
    def load_context(self, context):
        from training.predict import Predictor, bundle_runtime

        # the runtime its pip requirements name (training.tracking.pip_requirements): an ONNX bundle never
        # falls back to torch, which its environment does not have
        bundle = context.artifacts["bundle"]
        self.predictor = Predictor(bundle, runtime=bundle_runtime(bundle))

    def predict(self, context, model_input, params=None):
        from training.predict import flat_columns, flatten

        if isinstance(model_input, pd.DataFrame):
            texts = model_input["text"] if "text" in model_input else model_input.iloc[:, 0]
            texts = texts.astype(str).tolist()
        elif isinstance(model_input, str):
            texts = [model_input]
        else:
            texts = [str(t) for t in model_input]
        rows = [flatten(r) for r in self.predictor.classify(texts)]
        return pd.DataFrame(rows, columns=flat_columns(self.predictor.schema))


mlflow.models.set_model(FrontlineModel())
