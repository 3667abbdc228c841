"""Stage 5: the trained networks for ONNX Runtime, so that serving needs no TensorFlow.

Writes models/model.onnx: the network of models/model.keras with the same input (a batch
of 28x28x1 uint8 pixels, scaled inside) and the same 11 probabilities out (the digits
and NOT_A_DIGIT); and models/lines.onnx: the line reader of models/lines.keras (a
batch of 32-row uint8 lines of any width in, 11 logits per 4 columns out). Both are
converted by Keras' own `export(format="onnx")` (tf2onnx, on the TensorFlow backend).
The registered model runs them (digit_reader/digit_model.py), and evaluate checks that
they read as the Keras networks do, picture by picture.

The conversion is not byte-for-byte repeatable (tf2onnx names nodes as it goes), so a
version is identified by the .keras file and the code (pipeline/register.py), not by it.
"""

from pathlib import Path

from core.paths import LINES_PATH, MODEL_PATH, shown, written_whole


def export(keras_path: Path, onnx_path: Path) -> None:
    """Convert the .keras network at keras_path into an ONNX file at onnx_path."""
    import errno
    import warnings

    if not keras_path.is_file():  # one line (core/errors.py), naming the fix
        problem = "No such file: train it with `dvc repro`"
        raise FileNotFoundError(errno.ENOENT, problem, str(keras_path))

    import keras
    import tensorflow as tf

    network = keras.models.load_model(keras_path, compile=False)
    # A loaded model has never been called, so Keras cannot infer its input: name it.
    [pixels] = network.inputs
    spec = tf.TensorSpec((None, *pixels.shape[1:]), pixels.dtype, name=pixels.name)
    with written_whole(onnx_path) as partial, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf2onnx's numpy deprecation warnings
        network.export(str(partial), format="onnx", input_signature=[spec], verbose=False)


def main() -> None:
    for keras_path in (MODEL_PATH, LINES_PATH):
        onnx_path = keras_path.with_suffix(".onnx")  # beside it: core/packaging.py
        export(keras_path, onnx_path)
        print(f"export: {shown(onnx_path)} ({onnx_path.stat().st_size / 2**20:.1f} MB)")


if __name__ == "__main__":
    from core.errors import command

    command(main)
