"""Where the app's drawings are read: the registered model in process, or an endpoint.

Both take PNG bytes and answer like the registered model: {'digits': '170', 'boxes': [...]}
(digit_reader/contract.py), plus 'model_version': the registered version that read it, where
known (an endpoint says so in a header; `python -m serving` does not). `load` and `read`
are slow (MLflow's loading, the network, an HTTP round trip): the app calls them off the
Tk thread. `load` raises a
UserError (core/errors.py) with the command that fixes a missing model or endpoint.
"""

from digit_reader.contract import read_model
from serving.client import post, predictions, request_body, wait_until_ready

TIMEOUT = 10  # seconds an endpoint may take to answer before the app says it failed


class LocalModel:
    def __init__(self, model_uri: str):
        self.model_uri = model_uri
        self.model = None
        self.version: str | None = None

    def load(self) -> str:
        import mlflow

        from core.registry import check_model, describe_model, registered_version
        from core.store import tracking_uri, use_store

        use_store()
        description = describe_model(self.model_uri)
        self.version = registered_version(self.model_uri)
        check_model(self.model_uri)
        self.model = mlflow.pyfunc.load_model(self.model_uri)
        store = tracking_uri()
        server = f" from {store}" if store.startswith(("http://", "https://")) else ""
        return f"model {description}{server}, in process"

    def read(self, png: bytes) -> dict:
        return read_model(self.model, [png])[0] | {"model_version": self.version}


class Endpoint:
    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def load(self) -> str:
        wait_until_ready(self.url, timeout=5)
        return f"endpoint {self.url}"

    def read(self, png: bytes) -> dict:
        reply = post(self.url, request_body([png]), TIMEOUT)
        return predictions(self.url, reply)[0] | {"model_version": reply.version}
