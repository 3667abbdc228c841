"""List the versions of the registered model and move the `champion` alias.

    python -m pipeline.promote              # list versions, accuracies and aliases
    python -m pipeline.promote 3            # make version 3 the champion
    python -m pipeline.promote 3 --force    # even if it is less accurate than the champion

MNIST's test accuracy decides: a version that reads the app's corrections better
(`feedback`) but MNIST worse is refused too, unless forced.

Clients load `models:/<name>@champion`; moving the alias is how a model goes live.
"""

import argparse
from datetime import datetime

from core.errors import ModelMissing, UserError
from core.registry import CHALLENGER, CHAMPION, model_name


class PromotionError(UserError):
    """A promotion refused; the message says why and how to force it where one may."""


def accuracy(version, tag: str = "test_accuracy") -> float:
    return float(version.tags.get(tag, "nan"))


def champion(client, name: str):
    """The version holding the champion alias, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def promote(client, name: str, version: str, force: bool = False) -> None:
    """Move the champion alias to version, refusing one whose model cannot be loaded, and
    a less accurate one unless forced."""
    from mlflow.exceptions import MlflowException

    from core.registry import check_model

    try:
        chosen = client.get_model_version(name, version)
    except MlflowException:
        raise PromotionError(f"{name} has no version {version}") from None
    try:  # a version whose files are gone would break every client at once
        check_model(f"models:/{name}/{version}")
    except ModelMissing as error:
        raise PromotionError(f"refusing to promote: {error}") from None
    current = champion(client, name)
    if current and not force and accuracy(chosen) < accuracy(current):
        feedback = [accuracy(v, "feedback_accuracy") for v in (chosen, current)]
        better = feedback[0] > feedback[1]  # False where either has no feedback accuracy
        raise PromotionError(
            f"refusing to promote version {version} (test accuracy {accuracy(chosen)}) over "
            f"champion version {current.version} (test accuracy {accuracy(current)})"
            + (
                f", although it reads the app's corrections better ({feedback[0]:.2%} against "
                f"{feedback[1]:.2%})"
                if better
                else ""
            )
            + "; add --force to promote it anyway"
        )
    # The challenger alias goes first: on a team server that needs MANAGE, and a user
    # without it is refused before anything has changed.
    if CHALLENGER in chosen.aliases:
        client.delete_registered_model_alias(name, CHALLENGER)
    client.set_registered_model_alias(name, CHAMPION, version)


def auto_promote(client, name: str, version: str, min_accuracy: float) -> str | None:
    """After training: champion if there is none yet, else challenger; None if too weak."""
    chosen = client.get_model_version(name, version)
    if accuracy(chosen) < min_accuracy:
        return None
    alias = CHALLENGER if champion(client, name) else CHAMPION
    client.set_registered_model_alias(name, alias, version)
    return alias


def show_versions(client, name: str) -> None:
    versions = client.search_model_versions(f"name = '{name}'")
    versions = sorted(versions, key=lambda v: int(v.version))
    if not versions:
        print(f"{name} has no versions yet: run `dvc repro` to train and register one")
        return
    aliases = {}  # search results leave aliases out: they come with the registered model
    for alias, version in client.get_registered_model(name).aliases.items():
        aliases.setdefault(str(version), []).append(alias)
    # Whole written numbers read right, per set of the benchmark (evaluate stage).
    sets = sorted({tag for v in versions for tag in v.tags if tag.startswith("numbers_")})
    # and the held-out corrections from the drawing app, where a version was measured on them
    sets += ["feedback_accuracy"] * any("feedback_accuracy" in v.tags for v in versions)
    header = "".join(f"  {tag.removeprefix('numbers_')[:8]:>8}" for tag in sets)
    print(f"{'version':>7}  {'test acc':>8}{header}  {'created':16}  {'run id':32}  aliases")
    for v in versions:
        created = datetime.fromtimestamp(v.creation_timestamp / 1000).strftime("%Y-%m-%d %H:%M")
        numbers = "".join(f"  {float(v.tags.get(tag, 'nan')):>8.2%}" for tag in sets)
        print(
            f"{v.version:>7}  {accuracy(v):>8.4f}{numbers}  {created:16}  {v.run_id:32}  "
            + ", ".join(sorted(aliases.get(str(v.version), [])))
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version", nargs="?", help="the version to make champion")
    parser.add_argument("--force", action="store_true", help="promote even a less accurate one")
    args = parser.parse_args()
    name = model_name()

    import mlflow

    from core.store import use_store

    use_store()
    client = mlflow.MlflowClient()
    if args.version:
        promote(client, name, args.version, args.force)
        print(f"{name}@{CHAMPION} is now version {args.version}")
    show_versions(client, name)


if __name__ == "__main__":
    from core.errors import command

    command(main)
