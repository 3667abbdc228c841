"""Where the app's drawings are read: the registered model in process, or an endpoint.

Both take PNG bytes and answer like the registered model: {'digits': '170', 'boxes': [...]}
(serving/contract.py), plus 'model_version': the registered version that read it, where
known (an endpoint says so in a header; `python -m serving` does not). `load` and `read`
are slow (TensorFlow, the network): the app calls them off the Tk thread. `load` raises
LookupError with the command that fixes a missing model or endpoint.
"""

from serving.contract import (
    EndpointError,
    post,
    predictions,
    read_model,
    request_body,
    wait_until_ready,
)

TIMEOUT = 10  # seconds an endpoint may take to answer before the app says it failed


class LocalModel:
    def __init__(self, model_uri: str):
        self.model_uri = model_uri
        self.model = None
        self.version: str | None = None

    def load(self) -> str:
        import mlflow

        from pipeline import tracking

        try:
            tracking.use_store()
        except tracking.StoreError as error:
            raise LookupError(str(error)) from None
        description = tracking.describe_model(self.model_uri)
        self.version = tracking.registered_version(self.model_uri)
        tracking.check_model(self.model_uri)
        self.model = mlflow.pyfunc.load_model(self.model_uri)
        store = tracking.tracking_uri()
        server = f" from {store}" if store.startswith(("http://", "https://")) else ""
        return f"model {description}{server}, in process"

    def read(self, png: bytes) -> dict:
        return read_model(self.model, [png])[0] | {"model_version": self.version}


class Endpoint:
    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def load(self) -> str:
        try:
            wait_until_ready(self.url, timeout=5)
        except EndpointError as error:
            raise LookupError(str(error)) from None
        return f"endpoint {self.url}"

    def read(self, png: bytes) -> dict:
        reply = post(self.url, request_body([png]), TIMEOUT)
        return predictions(self.url, reply)[0] | {"model_version": reply.version}
