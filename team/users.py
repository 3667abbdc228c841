"""Add a person to the team's tracking server; run it as the admin.

    export MLFLOW_TRACKING_URI=http://mlflow.example.com:5000
    export MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD=...
    python -m team.users alice             # may browse runs and models (every user may)
    python -m team.users bob --editor      # may also train, register and promote

The new user's password (MLflow wants 12 characters or more) is asked for, or read
from the first line of stdin.
An editor gets EDIT on the experiment (to log runs) and MANAGE on the registered model
(to add versions and move aliases: promoting removes the `challenger` alias, which
needs MANAGE). Both are created first when they do not exist yet.
"""

import argparse
import getpass
import sys
import warnings

from core.errors import UserError, command
from core.params import load_params


def read_password(user: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(f"password for {user}: ")
    return sys.stdin.readline().rstrip("\n")


def make_editor(auth, user: str, experiment: str, model_name: str) -> None:
    """Grant user the rights to train, register and promote (the admin's client)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    experiment_id = mlflow.set_experiment(experiment).experiment_id  # created if missing
    client = mlflow.MlflowClient()
    try:
        client.get_registered_model(model_name)
    except MlflowException:
        client.create_registered_model(model_name)
    auth.grant_user_permission(user, "experiment", experiment_id, "EDIT")
    auth.grant_user_permission(user, "registered_model", model_name, "MANAGE")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("user")
    parser.add_argument("--editor", action="store_true", help="may train, register and promote")
    args = parser.parse_args()
    params = load_params()
    password = read_password(args.user)
    if not password:
        raise UserError("the password is empty")

    from core.store import tracking_uri, use_store

    uri = tracking_uri()
    if not uri.startswith(("http://", "https://")):
        raise UserError("set MLFLOW_TRACKING_URI to the team's server (python -m team.server)")
    use_store()
    from mlflow.exceptions import MlflowException

    with warnings.catch_warnings():  # Starlette's deprecation notice, from MLflow's server
        warnings.simplefilter("ignore")
        from mlflow.server.auth.client import AuthServiceClient

    auth = AuthServiceClient(uri)
    try:
        auth.create_user(args.user, password)
    except MlflowException as error:
        if error.error_code == "RESOURCE_ALREADY_EXISTS":
            raise UserError(f"{args.user} is a user of {uri} already") from None
        if error.error_code == "INVALID_PARAMETER_VALUE":  # a password too short, ...
            raise UserError(error.message) from None
        raise
    if args.editor:
        make_editor(auth, args.user, params["mlflow"]["experiment"], params["mlflow"]["model_name"])
    what = "train, register and promote" if args.editor else "browse"
    print(f"{args.user} may {what} on {uri}")


if __name__ == "__main__":
    command(main)
