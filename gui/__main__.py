"""Start the drawing app.

python -m gui                                        # models:/mnist-cnn@champion, in process
python -m gui --model-uri models:/mnist-cnn@challenger
python -m gui --endpoint http://127.0.0.1:5001       # a running `python -m serving`
"""

import argparse
import tkinter as tk

from gui.app import App
from gui.readers import Endpoint, LocalModel
from pipeline.params import load_params


def main() -> None:
    name = load_params()["mlflow"]["model_name"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model-uri", default=f"models:/{name}@champion")
    source.add_argument("--endpoint", help="URL of a running endpoint, instead of the model")
    args = parser.parse_args()
    reader = Endpoint(args.endpoint) if args.endpoint else LocalModel(args.model_uri)
    try:
        root = tk.Tk()
    except tk.TclError as error:
        raise SystemExit(f"error: cannot open a window ({error}): is there a display?") from None
    App(root, reader)
    root.mainloop()


if __name__ == "__main__":
    main()
