"""Where the app's drawings are read: the registered model in process, or an endpoint.

Both take PNG bytes and answer like the registered model: {'digits': '170', 'boxes': [...]}.
`load` is slow (it imports TensorFlow or waits for the network): the app calls it in a
thread, and it raises LookupError with the command that fixes a missing model.
"""

import base64
import urllib.error
import urllib.request


class LocalModel:
    def __init__(self, model_uri: str):
        self.model_uri = model_uri
        self.model = None

    def load(self) -> str:
        import mlflow

        from pipeline import tracking

        tracking.use_store()
        description = tracking.describe_model(self.model_uri)
        self.model = mlflow.pyfunc.load_model(self.model_uri)
        return f"model {description}, in process"

    def read(self, png: bytes) -> dict:
        import pandas as pd

        image = base64.b64encode(png).decode("ascii")
        return self.model.predict(pd.DataFrame({"image": [image]})).to_dict("records")[0]


class Endpoint:
    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def load(self) -> str:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=5):
                return f"endpoint {self.url}"
        except (urllib.error.URLError, OSError):
            raise LookupError(
                f"no endpoint answers at {self.url}: start one with `python -m serving`"
            ) from None

    def read(self, png: bytes) -> dict:
        from serving.client import read_digits

        return read_digits([png], self.url, timeout=10)[0]
