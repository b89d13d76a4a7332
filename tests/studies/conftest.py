"""The studies' tests use tiny models too: the model tests' fixed seed and one thread."""

import json

from fromscratch.cli import main
from tests.models.conftest import _seed_and_one_thread  # noqa: F401  (an autouse fixture)


def refused(capsys, stage: str, args: dict, log_dir) -> str:
    """The error `fromscratch run STAGE --args ARGS` ends with when it refuses them (exit 1):
    one line, with nothing of ours after it (a failure's traceback would follow it)."""
    capsys.readouterr()  # only this command's output
    command = ["run", stage, "--args", json.dumps(args), "--log-dir", str(log_dir)]
    assert main(command) == 1
    err = capsys.readouterr().err
    *before, last = err.splitlines()  # before it: a loaded model's progress bar, if any
    assert last.startswith("fromscratch: error: ") and "fromscratch" not in "".join(before), err
    return last
