"""The store under a team's history: SQLite against the team's server on PostgreSQL.

    python bench/tracking.py [--runs 1000] [--versions 200] [--mixed 60]

Seeds each store with --runs runs (the parameters of params.yaml, 15 epochs of the four
training metrics, test metrics) and --versions versions of the registered model, then
prints the time of `python -m pipeline.promote` (the listing; the whole command, and the
listing alone in process) and of logging one run with 15 epochs of metrics the way
`train` does (one request per epoch). The server is `python -m team.server` with its
login, on a throwaway PostgreSQL cluster (team/local.py), both on loopback.

Then a team at work on the seeded server for --mixed seconds (bench/mixed.py: 4 trainings,
20 people browsing, promotions), with the server on 1 and then on 4 workers: calls,
errors and p50 / p99 per kind of call.
"""

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from machine import cpu_name  # noqa: E402  (bench/machine.py)
from mixed import mixed_load  # noqa: E402  (bench/mixed.py)
from mixed import report as mixed_report  # noqa: E402

from core.params import load_params  # noqa: E402
from core.registry import model_name  # noqa: E402
from core.runs import training_params  # noqa: E402
from pipeline.promote import show_versions  # noqa: E402
from team import local  # noqa: E402

METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


def seed_store(runs: int, versions: int) -> None:
    """Runs and versions in the store MLflow points at (batched: seeding is not measured)."""
    import mlflow
    from mlflow.entities import Metric, Param

    client = mlflow.MlflowClient()
    experiment = mlflow.set_experiment("mnist").experiment_id
    params = [Param(k, str(v)) for k, v in training_params(load_params()).items()]
    name = model_name()
    client.create_registered_model(name)
    for index in range(runs):
        run = client.create_run(experiment).info.run_id
        now = int(time.time() * 1000)
        metrics = [
            Metric(key, 0.9 + epoch / 200, now, epoch) for epoch in range(15) for key in METRICS
        ] + [Metric("test_accuracy", 0.99, now, 0)]
        client.log_batch(run, metrics=metrics, params=params)
        client.set_terminated(run)
        if index < versions:
            client.create_model_version(
                name, f"runs:/{run}/model", run, tags={"test_accuracy": "0.99", "run_id": run}
            )


def log_one_run() -> float:
    """Seconds to log one training run as `train` does: parameters, then one call per epoch."""
    import mlflow

    started = time.perf_counter()
    with mlflow.start_run():
        mlflow.log_params(training_params(load_params()))
        for epoch in range(15):
            mlflow.log_metrics({key: 0.5 for key in METRICS}, step=epoch)
    return time.perf_counter() - started


def measure(label: str, env: dict[str, str]) -> dict[str, str]:
    import mlflow

    os.environ.update(env)
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline.promote"], cwd=ROOT, env=dict(os.environ),
                   check=True, capture_output=True)  # fmt: skip
    command = time.perf_counter() - started
    started = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        stdout, sys.stdout = sys.stdout, devnull
        try:
            show_versions(mlflow.MlflowClient(), model_name())
        finally:
            sys.stdout = stdout
    listing = time.perf_counter() - started
    return {"store": label, "promote": f"{command:.2f}", "listing": f"{listing:.2f}",
            "log run": f"{log_one_run():.2f}"}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=200)
    parser.add_argument("--mixed", type=float, default=60, help="seconds of mixed load (60)")
    args = parser.parse_args()
    os.environ.update(TF_CPP_MIN_LOG_LEVEL="2", MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT="true")
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # a line per version otherwise
    rows, mixed = [], []
    with tempfile.TemporaryDirectory() as folder:
        sqlite = {"MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db"}
        os.environ.update(sqlite)
        import mlflow

        mlflow.set_tracking_uri(sqlite["MLFLOW_TRACKING_URI"])
        started = time.perf_counter()
        seed_store(args.runs, args.versions)
        print(f"seeded SQLite in {time.perf_counter() - started:.0f} s", flush=True)
        rows.append(measure("SQLite (local file)", sqlite))

        with (
            local.cluster() as database,
            local.tracking_server(database, Path(folder) / "server") as server,
        ):
            url = server.url
            team = {"MLFLOW_TRACKING_URI": url, "MLFLOW_TRACKING_USERNAME": "admin",
                    "MLFLOW_TRACKING_PASSWORD": local.ADMIN_PASSWORD}  # fmt: skip
            os.environ.update(team)
            mlflow.set_tracking_uri(url)
            started = time.perf_counter()
            seed_store(args.runs, args.versions)
            print(f"seeded the server in {time.perf_counter() - started:.0f} s", flush=True)
            rows.append(measure("team server (PostgreSQL, login, 127.0.0.1)", team))
            if args.mixed:
                mixed += mixed_report("1 worker", mixed_load(url, model_name(), args.mixed))
                server.stop()
                with local.tracking_server(database, Path(folder) / "server", 4) as four:
                    calls = mixed_load(four.url, model_name(), args.mixed)
                    mixed += mixed_report("4 workers", calls)

    print(f"\nmachine: {cpu_name()}, {os.cpu_count()} CPUs")
    print(f"{args.runs} runs, {args.versions} versions; seconds:\n")
    print("| store | `python -m pipeline.promote` | listing in process | logging one run |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['store']} | {row['promote']} | {row['listing']} | {row['log run']} |")
    if mixed:
        print(f"\nMixed load on the team server, {args.mixed:g} s per server (bench/mixed.py):\n")
        print("| server | call | calls | errors | p50 / p99 (ms) |")
        print("| --- | --- | --- | --- | --- |")
        print("\n".join(mixed))


if __name__ == "__main__":
    main()
