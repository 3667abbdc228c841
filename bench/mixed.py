"""A team at work on one tracking server, for a bounded time (bench/tracking.py --mixed):

- 4 trainings, each a run logging the four training metrics once every half second
  (a fast epoch), then ending and starting the next run;
- 20 people browsing: each lists the latest runs, then the model's versions, a second
  apart;
- one person promoting: the champion alias moved to another version every 5 seconds.

Every call is timed and its failures counted, per kind of call. The clients are threads
of this process, on the same cores as the server (as a team's would not be): the numbers
compare servers measured in the same run, not machines.
"""

import random
import threading
import time
from collections import defaultdict
from functools import partial

TRAININGS, BROWSERS = 4, 20
EPOCH_SECONDS, THINK_SECONDS, PROMOTE_SECONDS = 0.5, 1.0, 5.0
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


class Calls:
    """Latencies and failures per kind of call, from many threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)

    def timed(self, kind: str, call, *args) -> None:
        started = time.perf_counter()
        try:
            call(*args)
        except Exception as error:  # noqa: BLE001 - a failed call is what is counted
            with self.lock:
                self.errors[kind].append(f"{type(error).__name__}: {str(error)[:200]}")
            return
        with self.lock:
            self.seconds[kind].append(time.perf_counter() - started)


def train(client, experiment: str, calls: Calls, until: float) -> None:
    while time.monotonic() < until:
        run = client.create_run(experiment).info.run_id
        for epoch in range(15):
            if time.monotonic() >= until:
                break
            metrics = {key: random.random() for key in METRICS}
            calls.timed("log epoch", log, client, run, metrics, epoch)
            time.sleep(EPOCH_SECONDS)
        calls.timed("end run", client.set_terminated, run)


def log(client, run: str, metrics: dict[str, float], epoch: int) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    client.log_batch(run, metrics=[Metric(k, v, now, epoch) for k, v in metrics.items()])


def browse(client, experiment: str, name: str, calls: Calls, until: float) -> None:
    while time.monotonic() < until:
        calls.timed("list runs", partial(client.search_runs, [experiment], max_results=50))
        time.sleep(THINK_SECONDS)
        calls.timed("list versions", client.search_model_versions, f"name = '{name}'")
        time.sleep(THINK_SECONDS)


def promote(client, name: str, versions: list[str], calls: Calls, until: float) -> None:
    while time.monotonic() < until:
        version = random.choice(versions)
        calls.timed("promote", client.set_registered_model_alias, name, "champion", version)
        time.sleep(PROMOTE_SECONDS)


def mixed_load(url: str, name: str, seconds: float) -> Calls:
    """Run the load against the server at url (credentials from the environment)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=url, registry_uri=url)
    experiment = client.get_experiment_by_name("mnist").experiment_id
    versions = [v.version for v in client.search_model_versions(f"name = '{name}'")]
    calls, until = Calls(), time.monotonic() + seconds
    people = [(train, (client, experiment, calls, until))] * TRAININGS
    people += [(browse, (client, experiment, name, calls, until))] * BROWSERS
    people += [(promote, (client, name, versions, calls, until))]
    threads = [threading.Thread(target=work, args=args) for work, args in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return calls


def ms(seconds: list[float], share: float) -> str:
    """The percentile of sorted seconds, in whole milliseconds."""
    return f"{seconds[min(int(len(seconds) * share), len(seconds) - 1)] * 1000:.0f}"


def report(label: str, calls: Calls) -> list[str]:
    """Markdown rows: per kind of call, calls, errors, p50 and p99 in ms."""
    rows = []
    for kind in sorted(set(calls.seconds) | set(calls.errors)):
        seconds = sorted(calls.seconds[kind])
        errors = len(calls.errors[kind])
        timing = f"{ms(seconds, 0.5)} / {ms(seconds, 0.99)}" if seconds else "-"
        rows.append(f"| {label} | {kind} | {len(seconds) + errors} | {errors} | {timing} |")
    for kind, messages in calls.errors.items():
        for message in sorted(set(messages))[:3]:
            rows.append(f"|  | {kind} error | {message} | | |")
    return rows
