"""Start the drawing app.

python -m gui                                        # the champion, in process
python -m gui --model-uri models:/mnist-cnn@challenger
python -m gui --endpoint http://127.0.0.1:5001       # a running `python -m serving`
python -m gui --feedback ~/corrections              # where corrections go
python -m gui --review production/review            # label what an endpoint was unsure of

The champion is `models:/<mlflow.model_name of params.yaml>@champion`.
"""

import argparse
from pathlib import Path

from core.errors import UserError, command
from core.paths import FEEDBACK_DIR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model-uri", help="a registry URI or a model folder (the champion)")
    source.add_argument("--endpoint", help="URL of a running endpoint, instead of the model")
    parser.add_argument(
        "--feedback", type=Path, default=FEEDBACK_DIR, help="where corrections are saved"
    )
    source.add_argument(
        "--review",
        type=Path,
        help="review the unsure pictures an endpoint kept here (its --review-folder)",
    )
    args = parser.parse_args()
    if args.review and not args.review.is_dir():
        raise UserError(f"{args.review} is not a folder: the endpoint's --review-folder is")

    try:
        import tkinter as tk
    except ImportError:
        raise UserError(
            "this Python has no Tkinter: on Debian or Ubuntu, `apt install python3-tk`"
        ) from None

    try:
        root = tk.Tk()
    except tk.TclError as error:
        raise UserError(f"cannot open a window ({error}): is there a display?") from None
    if args.review:
        from core.review import ReviewFolder
        from gui.review import Review

        Review(root, ReviewFolder(args.review), args.feedback)
    else:
        from core.registry import alias_uri
        from gui.app import App
        from gui.readers import Endpoint, LocalModel

        uri = args.model_uri or alias_uri()
        App(root, Endpoint(args.endpoint) if args.endpoint else LocalModel(uri), args.feedback)
    root.mainloop()


if __name__ == "__main__":
    command(main, left_whole="corrections saved so far are whole")
