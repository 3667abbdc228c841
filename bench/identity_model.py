"""A model that does nothing: it answers its input (bench/endpoints.py, identity_model)."""

import mlflow


class Identity(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


mlflow.models.set_model(Identity())
