"""The registered model: pictures in, digits out.

An MLflow pyfunc logged from code ("models from code"): MLflow runs this file when the
model loads, so nothing is unpickled. The trained networks run in ONNX Runtime, from the
artifacts `onnx_model` (the digit network) and `lines_onnx_model` (the line reader,
which reads a number whole: lines.py), exported by pipeline/export.py; the .keras files
they came from ship beside them. So loading the model imports no TensorFlow. The
normalisation (normalize.py) and the choice of the digits read (reading.py, lines.py)
ship with it, in this package.

What it takes and answers, and its limits: contract.py.
"""

import base64
import binascii
import io
import json
import threading
import warnings

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from PIL import Image, UnidentifiedImageError

from digit_reader.contract import COLUMN, MAX_BATCH, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, encode, png
from digit_reader.lines import STRIDE, padded
from digit_reader.normalize import NOT_A_DIGIT, Digit, Page, candidates
from digit_reader.reading import asks_line_reader, best_reading, chosen_reading


class BadInput(MlflowException):
    """A request the model refuses: HTTP 400 with only this short message.

    MLflow's scoring server prepends the whole input to the message of any exception
    raised in predict and the JSON it returns comes from serialize_as_json, so this
    class answers with its own message alone.
    """

    def __init__(self, message: str):
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)
        self.short_message = message

    def serialize_as_json(self) -> str:
        return json.dumps({"error_code": "BAD_REQUEST", "message": self.short_message})


def decode_image(text: object, index: int) -> Image.Image:
    """The picture of row `index`, or BadInput naming what is wrong with it."""
    if not isinstance(text, str) or not text:
        raise BadInput(f"image {index}: expected a base64-encoded PNG or JPEG string")
    if len(text) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise BadInput(f"image {index}: larger than the limit of {MAX_IMAGE_BYTES} bytes")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadInput(f"image {index}: not valid base64") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise BadInput(
                    f"image {index}: {image.width}x{image.height} pixels is larger than "
                    f"the limit of {MAX_IMAGE_PIXELS} pixels"
                )
            if image.format not in ("PNG", "JPEG"):
                raise BadInput(f"image {index}: expected PNG or JPEG, found {image.format}")
            image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombWarning):
        raise BadInput(f"image {index}: not a readable PNG or JPEG image") from None
    return image


def box(digit: Digit, probabilities: np.ndarray) -> dict:
    return {
        "x": digit.x,
        "y": digit.y,
        "width": digit.width,
        "height": digit.height,
        "digit": int(probabilities.argmax()),
        "confidence": round(float(probabilities.max()), 4),
        "probabilities": [round(float(p), 4) for p in probabilities],
        "pixels": encode(png(digit.pixels)),  # what the network read: what a correction keeps
    }


class DigitReader(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # One thread: the batches are a few digits, and a worker has its core (2 threads
        # took 1.15 ms for one digit where one takes 0.58 ms; docs/serving.md).
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self.network, self.lines = (
            onnxruntime.InferenceSession(
                context.artifacts[name], options, providers=["CPUExecutionProvider"]
            )
            for name in ("onnx_model", "lines_onnx_model")
        )
        # One prediction at a time per process: MLflow's server runs each request in a
        # thread, and threads of this Python-heavy work only fight over the GIL (4 threads
        # read 162 pictures/s where one reads 206). More processes: `--workers`.
        self.one_at_a_time = threading.Lock()

    def classify(self, pixels: np.ndarray) -> np.ndarray:
        """The digits' probabilities for a batch of 28x28x1 uint8 digits. What they leave
        to 1 is the network's belief that the candidate is not one whole digit
        (NOT_A_DIGIT, its 11th answer)."""
        [probabilities] = self.network.run(None, {"pixels": pixels})
        return probabilities[:, :NOT_A_DIGIT]

    def read_line(self, page: Page) -> np.ndarray:
        """The line reader's probabilities for each STRIDE columns of the page's line
        (not for the empty columns after it, which it was never taught to read)."""
        [logits] = self.lines.run(None, {"line": padded(page.line)})
        logits = logits[0, : page.line.pixels.shape[1] // STRIDE]
        logits = logits - logits.max(axis=1, keepdims=True)
        return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> list[dict]:
        """One {'digits', 'boxes'} per picture: plain records, which MLflow's server writes
        out as they are (a DataFrame would cost it a round trip through pandas)."""
        if COLUMN not in model_input.columns:
            raise BadInput(f"missing column '{COLUMN}' (base64-encoded PNG or JPEG pictures)")
        if len(model_input) == 0:
            raise BadInput("empty batch: send at least one image")
        if len(model_input) > MAX_BATCH:
            raise BadInput(f"{len(model_input)} images: at most {MAX_BATCH} per request")
        with self.one_at_a_time:
            pages = [
                candidates(decode_image(text, i)) for i, text in enumerate(model_input[COLUMN])
            ]
            return self.read(pages)

    def read(self, pages: list[Page]) -> list[dict]:
        """Classify the candidate digits of all pictures in one batch, then read each: the
        best cut of its ink, unless the line reader, where asked, reads the whole line
        otherwise and surely (reading.py: asks_line_reader, chosen_reading)."""
        batch = np.concatenate([page.pixels for page in pages])
        probabilities = self.classify(batch) if len(batch) else np.zeros((0, 10))
        results, start = [], 0
        for page in pages:
            stop = start + len(page.digits)
            reading = best_reading(page, probabilities[start:stop])
            if asks_line_reader(page.line, reading):
                reading = chosen_reading(page.line, page.strokes, reading, self.read_line(page))
            boxes = [box(d, p) for d, p in reading]
            start = stop
            results.append({"digits": "".join(str(b["digit"]) for b in boxes), "boxes": boxes})
        return results


mlflow.models.set_model(DigitReader())
