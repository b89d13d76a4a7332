"""Several CPU processes (gloo) train as one: the same steps as one process with the same
global batch, the same stop, and a resume that draws what the uninterrupted run would."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from subprocess import PIPE

import pytest
import torch
import yaml

from fromscratch.data import PreparedData
from fromscratch.train import TrainConfig
from fromscratch.train.models import build_model

from ..conftest import tiny_classifier, tiny_gpt

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(
    spec: dict, out, world: int, *flags: str, cli=(sys.executable, "-m", "fromscratch.cli")
) -> list[subprocess.Popen]:
    """`fromscratch train` in `world` processes (one: no distributed environment).
    cli: the command that runs fromscratch's command line."""
    config = out.parent / f"{out.name}.yaml"
    config.write_text(yaml.safe_dump(spec))
    command = [*cli, "train", str(config), "--out", str(out)]
    if world == 1:
        return [subprocess.Popen([*command, *flags], stdout=PIPE, stderr=PIPE, text=True)]
    env = {
        **os.environ,
        "WORLD_SIZE": str(world),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
        "OMP_NUM_THREADS": "1",
    }
    return [
        subprocess.Popen(
            [*command, *flags],
            env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
            stdout=PIPE,
            stderr=PIPE,
            text=True,
        )
        for rank in range(world)
    ]


def wait(processes: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    """Each process's exit status, standard output and standard error; a process still
    running after two minutes (one waiting forever on the others) fails the test."""
    ended = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=120)
            ended.append((process.returncode, out, err))
    finally:
        for process in processes:
            process.kill()
    return ended


def train(spec: dict, out, world: int, *flags: str) -> dict:
    for code, _, err in wait(start(spec, out, world, *flags)):
        assert code == 0, err
    return json.loads((out / "summary.json").read_text())


def weights(out) -> dict:
    return torch.load(out / "model.pt", weights_only=False)["model"]


def assert_same_weights(a: dict, b: dict, **tolerance) -> None:
    for name in a:
        torch.testing.assert_close(b[name], a[name], **tolerance)


def test_two_processes_take_the_steps_of_one(demo_chars, tmp_path):
    # No dropout: one process draws one mask for the whole batch, two draw two.
    spec = tiny_gpt(demo_chars, dropout=0.0, max_steps=8, eval_splits="")
    one = train(spec, tmp_path / "one", world=1)
    two = train(spec, tmp_path / "two", world=2)
    assert two["tokens"] == one["tokens"] == 8 * 8 * 32
    # the loss logged is the whole batch's, the mean of the processes' halves
    assert two["final_train_loss"] == pytest.approx(one["final_train_loss"], rel=1e-4)
    logged = [[json.loads(line)["loss"] for line in (tmp_path / run / "metrics.jsonl").open()
               if "loss" in json.loads(line)] for run in ("one", "two")]  # fmt: skip
    assert len(logged[0]) == 8 and logged[1] == pytest.approx(logged[0], rel=1e-4)
    assert_same_weights(weights(tmp_path / "one"), weights(tmp_path / "two"), rtol=1e-4, atol=1e-5)
    # ...and both really trained: the weights moved away from the initial ones.
    torch.manual_seed(spec["seed"])
    initial = build_model(TrainConfig.from_dict(spec), PreparedData(demo_chars).meta)
    assert any(
        not torch.equal(p, weights(tmp_path / "one")[n]) for n, p in initial.state_dict().items()
    )


def test_a_classifier_on_a_token_budget_stops_where_one_process_does(demo_words, tmp_path):
    """Each process's rows hold their own number of tokens (the reviews' lengths differ):
    the budget counts the whole batch's, on every process alike, or one would go on
    stepping alone."""
    spec = tiny_classifier(demo_words, clock="tokens", token_budget=6000, max_steps=0)
    spec["model"]["dropout"] = 0.0
    spec["eval_splits"] = ""
    one = train(spec, tmp_path / "one", world=1)
    two = train(spec, tmp_path / "two", world=2)
    assert (two["steps"], two["tokens"]) == (one["steps"], one["tokens"])
    assert one["tokens"] >= 6000 and one["steps"] > 1
    assert_same_weights(weights(tmp_path / "one"), weights(tmp_path / "two"), rtol=1e-4, atol=1e-5)


def test_a_signal_to_one_process_stops_both_and_the_resume_is_exact(demo_chars, tmp_path):
    """SIGTERM to the second process only: both save at the same step and stop; resumed,
    each draws its own dropout masks on from where it was, as in the run never stopped."""
    spec = tiny_gpt(demo_chars, dropout=0.1, max_steps=400, eval_splits="")
    train(spec, tmp_path / "whole", world=2)

    out = tmp_path / "stopped"
    ranks = start(spec, out, world=2)
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 60
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 20):
        assert time.monotonic() < deadline and ranks[0].poll() is None, "no steps logged"
        time.sleep(0.01)
    ranks[1].send_signal(signal.SIGTERM)
    for code, _, err in wait(ranks):
        assert code != 0 and "resume with --resume" in err, err
    saved = torch.load(next((out / "checkpoints").glob("step-*.pt")), weights_only=False)
    assert 20 <= saved["step"] < 400
    assert len(saved["rng"]) == 2  # each process's draws, and they differ
    assert not torch.equal(saved["rng"][0]["torch"], saved["rng"][1]["torch"])

    (code, said, err), (code_1, said_1, err_1) = wait(start(spec, out, 2, "--resume"))
    assert code == code_1 == 0, err + err_1
    # the first process speaks for both
    assert f"resuming from step {saved['step']}" in err and "resuming" not in err_1
    assert json.loads(said)["steps"] == 400 and said_1 == ""
    assert_same_weights(weights(tmp_path / "whole"), weights(out), rtol=0, atol=0)


# fromscratch's command line, where the second process's loss at step 4 is not finite
# and its gradients are (a constant added to the loss): one process's own fp16 overflow
ONE_LOSS_NOT_FINITE = """
import os, sys
from fromscratch.cli import main
from fromscratch.train import loop
if os.environ["RANK"] == "1":
    losses = []
    def loss_fn(*args, **kwargs):
        losses.append(loop_loss_fn(*args, **kwargs))
        return losses[-1] + float("nan") if len(losses) == 4 else losses[-1]
    loop_loss_fn, loop.loss_fn = loop.loss_fn, loss_fn
sys.exit(main(sys.argv[1:]))
"""


def test_a_loss_not_finite_in_one_process_stops_every_process(demo_chars, tmp_path):
    """They agree on the step's loss before they check it: the one whose own loss is not
    finite does not stop alone while the others wait for it forever."""
    spec = tiny_gpt(demo_chars, max_steps=20, eval_splits="")
    ranks = start(spec, tmp_path / "run", 2, cli=(sys.executable, "-c", ONE_LOSS_NOT_FINITE))
    for code, _, err in wait(ranks):
        assert code == 1 and "error: non-finite loss at step 4;" in err, err


def score_a_share(rank: int, port: int, specs: dict, out) -> None:
    """In each of two processes: score the test split of a GPT and of a classifier together,
    counting the batches this process ran."""
    from fromscratch.train.distributed import Distributed
    from fromscratch.train.evaluate import evaluate_classifier, evaluate_lm

    os.environ |= {"RANK": str(rank), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1"}
    os.environ |= {"MASTER_PORT": str(port), "LOCAL_RANK": str(rank)}
    share = Distributed.from_environment()
    results = {}
    for family, spec in specs.items():
        model, data = tiny_model(spec)
        batches = []
        model.register_forward_hook(lambda *_, ran=batches: ran.append(1))
        if family == "gpt":
            result = evaluate_lm(model, data, "test", context=32, batch_size=8, share=share)
        else:
            result = evaluate_classifier(model, data, "test", 96, batch_size=16, share=share)
        results[family] = {"result": result, "batches": len(batches)}
    (out / f"rank{rank}.json").write_text(json.dumps(results))
    share.close()


def tiny_model(spec: dict):
    config = TrainConfig.from_dict(spec)
    data = PreparedData(config.data)
    torch.manual_seed(0)
    return build_model(config, data.meta), data


def test_two_processes_evaluate_half_each_to_the_same_numbers(demo_chars, demo_words, tmp_path):
    specs = {"gpt": tiny_gpt(demo_chars), "classifier": tiny_classifier(demo_words)}
    torch.multiprocessing.spawn(score_a_share, (free_port(), specs, tmp_path), nprocs=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]

    from fromscratch.train.evaluate import evaluate_classifier, evaluate_lm

    gpt, chars = tiny_model(specs["gpt"])
    classifier, words = tiny_model(specs["classifier"])
    batches = {"gpt": [], "classifier": []}
    gpt.register_forward_hook(lambda *_: batches["gpt"].append(1))
    classifier.register_forward_hook(lambda *_: batches["classifier"].append(1))
    alone = {
        "gpt": evaluate_lm(gpt, chars, "test", context=32, batch_size=8),
        "classifier": evaluate_classifier(classifier, words, "test", 96, batch_size=16),
    }
    for family, whole in alone.items():
        for rank in ranks:
            assert rank[family]["result"] == pytest.approx(whole, rel=1e-9), family
        # each ran half of the batches (a GPT also one probe: how many positions it predicts)
        probe = family == "gpt"
        ran = [rank[family]["batches"] - probe for rank in ranks]
        assert sum(ran) == len(batches[family]) - probe and abs(ran[0] - ran[1]) <= 1, ran
