"""Stage 5: the trained network for ONNX Runtime, so that serving needs no TensorFlow.

Writes models/model.onnx: the network of models/model.keras with the same input (a batch
of 28x28x1 uint8 pixels, scaled inside) and the same 11 probabilities out (the digits
and NOT_A_DIGIT), converted by Keras' own `export(format="onnx")` (tf2onnx, on the
TensorFlow backend). The registered model runs it (digit_reader/digit_model.py), and
evaluate checks that it reads as the Keras network does, picture by picture.

The conversion is not byte-for-byte repeatable (tf2onnx names nodes as it goes), so a
version is identified by the .keras file and the code (pipeline/register.py), not by it.
"""

from pathlib import Path

from core.paths import MODEL_PATH, ONNX_PATH, shown, written_whole


def export(keras_path: Path, onnx_path: Path) -> None:
    """Convert the .keras network at keras_path into an ONNX file at onnx_path."""
    import warnings

    import keras
    import tensorflow as tf

    network = keras.models.load_model(keras_path, compile=False)
    # A loaded model has never been called, so Keras cannot infer its input: name it.
    [pixels] = network.inputs
    spec = tf.TensorSpec((None, *pixels.shape[1:]), pixels.dtype, name="pixels")
    with written_whole(onnx_path) as partial, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf2onnx's numpy deprecation warnings
        network.export(str(partial), format="onnx", input_signature=[spec], verbose=False)


def main() -> None:
    export(MODEL_PATH, ONNX_PATH)
    print(f"export: {shown(ONNX_PATH)} ({ONNX_PATH.stat().st_size / 2**20:.1f} MB)")


if __name__ == "__main__":
    from core.errors import command

    command(main)
