"""List, export and remove the corrections made in the drawing app (core/feedback.py).

python -m pipeline.feedback                      # counts per digit and model version
python -m pipeline.feedback list                 # one line per correction, with its name
python -m pipeline.feedback export NAME FOLDER   # its digit and drawing, as PNG files
python -m pipeline.feedback remove NAME          # take one out
"""

import argparse
from pathlib import Path

from core.errors import command
from core.feedback import export, listing, load_all, remove, summary
from core.paths import FEEDBACK_DIR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=FEEDBACK_DIR, help="default: %(default)s")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("list", help="one line per correction, with its name")
    export_command = commands.add_parser("export", help="a correction's digit and drawing")
    export_command.add_argument("name")
    export_command.add_argument("destination", type=Path)
    commands.add_parser("remove", help="take a correction out").add_argument("name")
    args = parser.parse_args()

    if args.command == "export":
        for path in export(args.name, args.destination, args.folder):
            print(path)
    elif args.command == "remove":
        remove(args.name, args.folder)
        print(f"removed {args.name}")
    elif args.command == "list":
        print(listing(load_all(args.folder)))
    else:
        print(summary(load_all(args.folder)))


if __name__ == "__main__":
    command(main)
