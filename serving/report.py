"""A drift report: what the production endpoint read lately, beside what the version read
on its own evaluation, as one HTML page with its plots inside.

    python -m serving.report                                  # production/, last 24 hours
    python -m serving.report --home production --version 3 --hours 6 --out report.html

The live side is the endpoint's answer log (<home>/answers.jsonl and the rotated .1); the
evaluation side is the same kind of log that evaluate wrote for the numbers benchmark and
register keeps with the version's run (evaluation/answers.jsonl; core/answer_log.py).
Five plots: digits read, confidence, digits per picture, picture size and share of ink;
and a table of the unsure and empty shares. docs/monitoring.md says how to read them.
"""

import argparse
import base64
import io
import time
from collections import Counter
from html import escape
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from core.answer_log import ANSWERS_LOG, read_lines  # noqa: E402
from core.errors import UserError, command  # noqa: E402
from core.paths import ROOT, written_whole  # noqa: E402
from digit_reader.contract import UNSURE_BELOW  # noqa: E402

EVALUATION_LOG = "evaluation/answers.jsonl"  # in the run of the version (register)
LIVE, EVALUATION = "live", "evaluation"


def live_answers(home: Path, version: str | None, hours: float) -> tuple[str, list[dict]]:
    """The version (by default the one that answered most) and its lines in the window."""
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - hours * 3600))
    lines = [
        line
        for line in read_lines(home / f"{ANSWERS_LOG}.1", home / ANSWERS_LOG)
        if line["time"] >= since
    ]
    if version is None and lines:
        version = Counter(line["version"] for line in lines).most_common(1)[0][0]
    lines = [line for line in lines if line["version"] == version]
    if not lines:
        which = f"version {version}" if version else "any version"
        raise UserError(
            f"no answers of {which} in {home / ANSWERS_LOG} in the last {hours:g} hours: "
            "is this the endpoint's --home, and has it answered?"
        )
    return version, lines


def evaluation_answers(version: str) -> tuple[list[dict], str]:
    """The version's evaluation lines from the registry, or none and the reason why."""
    import mlflow

    from core.registry import model_name
    from core.store import use_store

    try:
        use_store()
        run_id = mlflow.MlflowClient().get_model_version(model_name(), version).run_id
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=EVALUATION_LOG)
    except Exception as error:  # noqa: BLE001 - the live side is worth a page on its own
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        return [], f"version {version}'s evaluation answers are not in the registry ({first})"
    return list(read_lines(Path(path))), ""


def distributions(lines: list[dict]) -> dict[str, np.ndarray]:
    return {
        "digit": np.array([int(d) for line in lines for d in line["digits"]], dtype=int),
        "confidence": np.array([c for line in lines for c in line["confidences"]]),
        "count": np.array([len(line["confidences"]) for line in lines]),
        "pixels": np.log10([max(line["width"] * line["height"], 1) for line in lines]),
        "ink": np.array([line["ink"] for line in lines]),
    }


PLOTS = {  # name: title, x label, bins (None: one bar per whole number)
    "digit": ("Digits read", "digit", None),
    "confidence": ("Confidence of each digit", "confidence", np.linspace(0, 1, 21)),
    "count": ("Digits per picture", "digits", None),
    "pixels": ("Picture size", "log10 of pixels (width x height)", 20),
    "ink": ("Share of ink", "share of the picture's pixels", np.linspace(0, 1, 21)),
}


def plot(name: str, sides: dict[str, dict[str, np.ndarray]]) -> str:
    """One plot, both sides as shares so that sizes compare; a base64 PNG."""
    title, label, bins = PLOTS[name]
    fig, axis = plt.subplots(figsize=(6, 3.2))
    values = [side[name] for side in sides.values() if len(side[name])]
    if bins is None:  # whole numbers: a bar per value, the sides side by side
        top = max(int(v.max()) for v in values) if values else 0
        places = np.arange(top + 1)
        for offset, (side, data) in zip((-0.2, 0.2), sides.items(), strict=False):
            shares = np.bincount(data[name], minlength=top + 1) / max(len(data[name]), 1)
            axis.bar(places + offset, shares, width=0.4, label=side)
        axis.set_xticks(places)
    else:
        if isinstance(bins, int) and values:
            bins = np.histogram_bin_edges(np.concatenate(values), bins=bins)
        for side, data in sides.items():
            if len(data[name]):
                weights = np.full(len(data[name]), 1 / len(data[name]))
                axis.hist(data[name], bins=bins, weights=weights, histtype="step", label=side)
    axis.set_title(title)
    axis.set_xlabel(label)
    axis.set_ylabel("share")
    axis.grid(alpha=0.3)
    axis.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def summary(lines: list[dict]) -> dict[str, str]:
    unsure = [
        bool(line["confidences"]) and min(line["confidences"]) < UNSURE_BELOW for line in lines
    ]
    empty = [not line["confidences"] for line in lines]
    return {
        "pictures": str(len(lines)),
        f"unsure answers (a digit below {UNSURE_BELOW})": f"{np.mean(unsure):.1%}",
        "pictures with no digit": f"{np.mean(empty):.1%}",
        "from": min(line["time"] for line in lines),
        "to": max(line["time"] for line in lines),
    }


def page(version: str, live: list[dict], evaluation: list[dict], note: str) -> str:
    sides = {LIVE: distributions(live)}
    if evaluation:
        sides[EVALUATION] = distributions(evaluation)
    tables = {LIVE: summary(live)} | ({EVALUATION: summary(evaluation)} if evaluation else {})
    rows = "".join(
        f"<tr><th>{escape(key)}</th>"
        + "".join(f"<td>{escape(t[key])}</td>" for t in tables.values())
        + "</tr>"
        for key in tables[LIVE]
    )
    head = "".join(f"<th>{side}</th>" for side in tables)
    plots = "".join(
        f'<figure><img id="{name}" alt="{PLOTS[name][0]}" src="data:image/png;base64,'
        f'{plot(name, sides)}"><figcaption>{PLOTS[name][0]}</figcaption></figure>'
        for name in PLOTS
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Drift report: version {escape(version)}</title>
<style>body{{font-family:sans-serif;max-width:1300px;margin:2em auto}}
figure{{display:inline-block;margin:.5em}} td,th{{padding:.2em .8em;text-align:left}}</style>
</head><body>
<h1>Drift report: version {escape(version)}</h1>
<p>Live answers of the production endpoint beside the version's evaluation on the numbers
benchmark. Shares, not counts: the sides compare whatever their sizes.</p>
{f'<p class="note">{escape(note)}</p>' if note else ""}
<table><tr><th></th>{head}</tr>{rows}</table>
{plots}
</body></html>
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=ROOT / "production", help="the endpoint's")
    parser.add_argument("--version", help="the version to report on (the one answering most)")
    parser.add_argument("--hours", type=float, default=24, help="the window, back from now (24)")
    parser.add_argument("--out", type=Path, help="the HTML file (<home>/report-<version>.html)")
    args = parser.parse_args()
    if args.hours <= 0:
        parser.error(f"--hours must be above 0, not {args.hours:g}")
    version, live = live_answers(args.home, args.version, args.hours)
    evaluation, note = evaluation_answers(version)
    out = args.out or args.home / f"report-{version}.html"
    with written_whole(out) as path:
        path.write_text(page(version, live, evaluation, note))
    print(
        f"report: {len(live)} live answers of version {version} beside "
        f"{len(evaluation)} from its evaluation: {out}"
    )


if __name__ == "__main__":
    command(main)
