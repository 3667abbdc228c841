"""What the registered model takes and answers, and its limits: the model enforces them.

A request carries pictures (PNG or JPEG bytes), each base64-encoded in the column
`image` of MLflow's `dataframe_split` JSON. The answer holds, per picture, `digits` (the
digits read, left to right) and `boxes` (one per digit: its box in picture pixels, the
digit, its confidence, the ten digits' probabilities (summing to 1 less the network's
belief that the box is not one whole digit), and `pixels`: the 28x28 digit that the
network read, light ink on black as in MNIST, a base64 PNG). The model refuses what exceeds the
limits below with HTTP 400 and a message naming the limit.

The model (digit_model.py) decodes with these definitions; the evaluate stage, the app
and the benchmarks encode with them, and the HTTP client (serving/client.py) sends what
they encode. Importing it loads neither the model nor TensorFlow.
"""

import base64
import io

import numpy as np

COLUMN = "image"
MAX_IMAGE_BYTES = 4_000_000  # per picture, before base64 encoding
MAX_IMAGE_PIXELS = 12_000_000  # per picture (for example 4000 x 3000)
MAX_BATCH = 256  # pictures per request
# A digit read with less confidence than this is unsure: the app marks it, the endpoint
# counts the answers that hold one, and evaluate measures each version's share of them.
UNSURE_BELOW = 0.9


def png(pixels: np.ndarray) -> bytes:
    """A greyscale picture (2-D uint8 array, or 28x28x1) as PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8).squeeze()).save(buffer, "PNG")
    return buffer.getvalue()


def encode(picture: bytes) -> str:
    """One picture's bytes as the model reads them: base64 text."""
    return base64.b64encode(picture).decode("ascii")


def read_model(model, pictures: list[bytes]) -> list[dict]:
    """What a loaded pyfunc model reads in each picture, in batches of at most MAX_BATCH."""
    import pandas as pd

    results = []
    for start in range(0, len(pictures), MAX_BATCH):
        batch = [encode(picture) for picture in pictures[start : start + MAX_BATCH]]
        answer = model.predict(pd.DataFrame({COLUMN: batch}))
        # Records; versions registered before the ONNX export answer a DataFrame.
        results += answer.to_dict("records") if isinstance(answer, pd.DataFrame) else answer
    return results
