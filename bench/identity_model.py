"""A model that does nothing: it answers its input (bench/endpoints.py, identity_model).

It answers as the pictures-to-digits model does, plain records (one per row) rather than
a DataFrame, so that both take the same path through MLflow's server.
"""

import mlflow


class Identity(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return [{"image": image} for image in model_input["image"]]


mlflow.models.set_model(Identity())
