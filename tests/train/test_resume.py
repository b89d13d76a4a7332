"""Exact resume: a run killed with SIGKILL at a random step and resumed ends with the same
weights, bit for bit, as a run that was never interrupted (CPU). SIGTERM and Ctrl-C save a
checkpoint to resume from before the run stops."""

import errno
import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from fromscratch import Interrupted
from fromscratch.data import prepare
from fromscratch.train import TrainConfig, Trainer, checkpoint, train
from fromscratch.train.loop import StopSignals

from ..conftest import as_from_a_terminal, children, tiny_gpt


def launch(config_path, out, *extra, threads: int | None = None, **popen):
    """`fromscratch train` in a process of its own; threads: its torch threads (None: those
    the tests' processes take)."""
    # a run of its own W&B service, as a job has: not the one a test in this process may
    # have started (it outlives a killed run, and holds its run id)
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    popen.setdefault("env", env)
    popen.setdefault("preexec_fn", as_from_a_terminal)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fromscratch.cli",
            "train",
            str(config_path),
            "--out",
            str(out),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def last_logged_step(out):
    path = out / "metrics.jsonl"
    if not path.exists():
        return -1
    steps = [json.loads(line)["step"] for line in path.read_text().splitlines() if line.strip()]
    return max(steps, default=-1)


def wait_until_logged(run: subprocess.Popen, out, step: int, timeout: float = 120) -> None:
    """Wait until the run training into `out` has logged `step`; fail if it ends first."""
    deadline = time.time() + timeout
    while last_logged_step(out) < step:
        assert run.poll() is None, f"the run ended before step {step}"
        assert time.time() < deadline, f"no step {step} in {timeout} s"
        time.sleep(0.01)


def exit_status(run: subprocess.Popen, out, timeout: float) -> int:
    """The run's exit status once it ends; if it runs on past `timeout`, it is killed (not
    left to slow the tests after this one) and the test fails, naming its last step."""
    try:
        return run.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        run.kill()
        run.wait()
        pytest.fail(f"the run still ran after {timeout} s, at step {last_logged_step(out)}")


def weights(out):
    return torch.load(out / "model.pt", weights_only=False)["model"]


@pytest.mark.slow
def test_sigkill_at_a_random_step_then_resume_is_bitwise_identical(demo_chars, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_gpt(demo_chars, checkpoint_every=4, max_steps=40)))

    # on two threads, as a run on a real machine: their sums must come out the same too
    reference = launch(config, tmp_path / "reference", threads=2)
    assert reference.wait(timeout=300) == 0, reference.stderr.read()

    kill_at = random.Random(os.getpid()).randrange(6, 34)
    run = launch(config, tmp_path / "killed", threads=2)
    wait_until_logged(run, tmp_path / "killed", kill_at, timeout=300)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert not (tmp_path / "killed" / "model.pt").exists()
    # a checkpoint every 4 steps: the newest is of step 4 at least, and it is the one the
    # resumed run must start from (a fresh start would end with the same weights too)
    saved = [
        torch.load(p, weights_only=False)
        for p in (tmp_path / "killed" / "checkpoints").glob("step-*.pt")
    ]
    newest = max(state["step"] for state in saved)
    assert 4 <= newest <= 40 and newest % 4 == 0
    assert {state["cpu_threads"] for state in saved} == {2}

    resumed = launch(config, tmp_path / "killed", "--resume", threads=2)
    _, said = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, said
    assert f"resuming from step {newest} " in said, said

    a, b = weights(tmp_path / "reference"), weights(tmp_path / "killed")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs after resuming from step {kill_at}"
    # The metric history has every step once, as if nothing had happened.
    steps = [
        json.loads(line)["step"]
        for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
        if "loss" in json.loads(line) and "test/loss" not in json.loads(line)
    ]
    assert steps == list(range(1, 41))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_sigterm_sighup_or_ctrl_c_saves_a_checkpoint_and_stops(signum, demo_chars, tmp_path):
    """SIGHUP: the terminal the run was started in is closed."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_gpt(demo_chars, max_steps=100000, checkpoint_every=0)))
    run = launch(config, tmp_path / "run")
    wait_until_logged(run, tmp_path / "run", 3)
    run.send_signal(signum)
    assert exit_status(run, tmp_path / "run", 60) == 128 + signum  # as a shell reports it
    error = run.stderr.read().strip().splitlines()[-1]
    saved = list((tmp_path / "run" / "checkpoints").glob("step-*.pt"))
    assert len(saved) == 1
    step = torch.load(saved[0], weights_only=False)["step"]
    assert step >= 3
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    assert error == (
        f"fromscratch: stopped by {name} at step {step}; checkpoint saved, resume with --resume"
    )


def test_a_signal_during_a_step_saves_the_checkpoint_after_that_step(demo_chars, tmp_path):
    """Not one step later: a job in its grace period before SLURM kills it may have no
    time for another step."""
    config = tiny_gpt(demo_chars, max_steps=50, checkpoint_every=0, eval_splits="")
    trainer = Trainer(TrainConfig.from_dict(config), tmp_path / "run")
    batches = trainer.batches

    def batches_signalled_in_step_5(index):
        if index == 4:  # the fifth step's batch: the signal comes while that step runs
            os.kill(os.getpid(), signal.SIGUSR2)
        return batches(index)

    trainer.batches = batches_signalled_in_step_5
    with pytest.raises(Interrupted) as stopped:
        trainer.train_to_the_end()
    assert (stopped.value.signum, stopped.value.step) == (signal.SIGUSR2, 5)
    saved = checkpoint.list_checkpoints(tmp_path / "run" / "checkpoints")
    assert [checkpoint.step_of(path) for path in saved] == [5]


@pytest.mark.parametrize(
    "ignored", [signal.SIGHUP, signal.SIGINT], ids=["nohup", "a script's background job"]
)
def test_a_signal_the_run_was_started_to_ignore_stays_ignored(ignored, demo_chars, tmp_path):
    """nohup starts a run with SIGHUP ignored, so that closing the terminal stops nothing; a
    shell script starts its background jobs with Ctrl-C ignored, so that it stops only the
    foreground. The run must keep such a signal ignored, not stop at it."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_gpt(demo_chars, max_steps=200, eval_splits="")))

    def started_ignoring():
        as_from_a_terminal()
        signal.signal(ignored, signal.SIG_IGN)

    run = launch(config, tmp_path / "run", preexec_fn=started_ignoring)
    wait_until_logged(run, tmp_path / "run", 3)
    run.send_signal(ignored)
    assert exit_status(run, tmp_path / "run", 120) == 0, run.stderr.read()[-2000:]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 200


@pytest.mark.parametrize("resume", [True, False])
def test_an_interrupted_pipeline_stage_says_how_it_resumes(resume, demo_chars, tmp_path):
    """`fromscratch run train` has no --resume: its own "resume" argument decides, and the
    pipeline's rules pass true, so the same command continues the run."""
    config = tiny_gpt(demo_chars, max_steps=100000, checkpoint_every=0)
    arguments = {"config": config, "out": str(tmp_path / "run"), "resume": resume}
    command = [sys.executable, "-m", "fromscratch.cli", "run", "train",
               "--log-dir", str(tmp_path / "logs"), "--args", json.dumps(arguments)]  # fmt: skip
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    started = []  # killed at the end: a run that ignored its Ctrl-C trains on for hours

    def start() -> subprocess.Popen:
        started.append(subprocess.Popen(command, preexec_fn=as_from_a_terminal, **quiet))
        return started[-1]

    try:
        stage = start()
        wait_until_logged(stage, tmp_path / "run", 3)
        stage.send_signal(signal.SIGINT)
        assert stage.wait(timeout=60) == 128 + signal.SIGINT
        error = stage.stderr.read().strip().splitlines()[-1]
        step = torch.load(
            next((tmp_path / "run" / "checkpoints").glob("step-*.pt")), weights_only=False
        )["step"]
        how = "the same command resumes it" if resume else 'resume with "resume": true in --args'
        assert error == f"fromscratch: stopped by Ctrl-C at step {step}; checkpoint saved, {how}"
        if resume:  # and it does: the same command, stopped again once it has trained on
            again = start()
            wait_until_logged(again, tmp_path / "run", step + 1)
            again.send_signal(signal.SIGINT)
            _, said = again.communicate(timeout=60)
            assert f"resuming from step {step} " in said, said
    finally:
        for process in started:
            process.kill()
            process.wait()


def test_a_second_run_in_a_folder_in_use_fails_at_once(demo_chars, tmp_path):
    """Two runs in one folder would mix their checkpoints and metrics: the second is refused
    while the first trains, and the folder is free again once the first is killed."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_gpt(demo_chars, max_steps=100000)))
    first = launch(config, tmp_path / "run")
    wait_until_logged(first, tmp_path / "run", 1)
    second = launch(config, tmp_path / "run", "--resume")
    assert second.wait(timeout=120) == 1
    error = second.stderr.read().strip().splitlines()[-1]
    assert error.startswith(
        f"fromscratch: error: {tmp_path / 'run'}: another run is training in this folder "
        f"(pid {first.pid} on "
    )
    assert (
        "wait for it to end, or give this one another output folder. One left running by " in error
    )
    assert error.endswith("stop it (kill, scancel), then run this again")
    first.send_signal(signal.SIGKILL)
    first.wait()
    tiny = TrainConfig.from_dict(tiny_gpt(demo_chars, max_steps=3, eval_splits=""))
    assert train(tiny, tmp_path / "run")["steps"] == 3  # no stale lock after SIGKILL


def test_a_run_removes_what_a_killed_runs_writes_left(demo_chars, tmp_path):
    """SIGKILL skips an atomic write's clean-up: its temporary file (a whole checkpoint)
    would stay beside the outputs for ever.  The next run in the folder removes such files,
    and nothing else."""
    run = tmp_path / "run"
    leftovers = [
        run / ".model.pt.0123456789abcdef.tmp",
        run / ".summary.json.fedcba9876543210.tmp",
        run / "checkpoints" / ".step-00000002.pt.00112233aabbccdd.tmp",
    ]
    kept = [run / "notes.tmp", run / ".model.pt.tmp", run / "checkpoints" / ".keep"]
    for path in leftovers + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    (run / ".data.0123456789abcdef.tmp").mkdir()  # a folder's, as atomic_dir leaves
    tiny = TrainConfig.from_dict(tiny_gpt(demo_chars, max_steps=2, eval_splits=""))
    assert train(tiny, run)["steps"] == 2
    assert not any(path.exists() for path in leftovers)
    assert not (run / ".data.0123456789abcdef.tmp").exists()
    assert all(path.read_bytes() == b"half a file" for path in kept)


def test_wandb_gets_every_step_of_a_run_killed_outright(demo_chars, tmp_path):
    """W&B's service writes its offline file in blocks: SIGKILL loses what came since, and
    the resumed run logs only what follows its checkpoint.  It sends W&B the kept lines
    that the earlier files lack, so the history holds every step once, in order, in files
    that `wandb sync` reads to their end (one cut inside a record stops it)."""
    from fromscratch.track import cut_offline_file, offline_history_steps

    run, config = tmp_path / "run", tmp_path / "config.yaml"
    settings = dict(max_steps=60, log_every=5, eval_every=20, checkpoint_every=10)
    config.write_text(yaml.safe_dump(tiny_gpt(demo_chars, wandb_mode="offline", **settings)))
    first = launch(config, run)
    wait_until_logged(first, run, 35)
    for pid in [first.pid, *children(first.pid)]:  # W&B's service too, as a job's end kills it
        os.kill(pid, signal.SIGKILL)
    first.wait()
    resumed = launch(config, run, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    logged = {json.loads(line)["step"] for line in (run / "metrics.jsonl").open()}
    files = sorted(run.glob("wandb/offline-run-*/*.wandb"))
    files += sorted(run.glob("wandb.unreadable/offline-run-*/*.wandb"))  # killed too early
    assert len(files) == 2  # the killed start's and the resumed one's
    synced = [path for path in files if "unreadable" not in str(path)]
    held = [step for path in synced for step in offline_history_steps(path)]
    assert held == sorted(logged)  # each step once, in order: merged lines of a step are a row
    for path in synced:
        whole = path.read_bytes()
        assert cut_offline_file(path, step=10**9) > 0  # at least one record, none cut short
        assert path.read_bytes() == whole


def test_a_file_system_without_locks_does_not_stop_a_run(demo_chars, tmp_path, monkeypatch, capsys):
    """Some cluster file systems refuse flock (Lustre mounted without -o flock answers
    ENOSYS): the run goes on unguarded and says so.  (No such file system here: flock is
    made to answer as it does there.)"""

    def no_locks(fd, operation):
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    tiny = TrainConfig.from_dict(tiny_gpt(demo_chars, max_steps=2, eval_splits=""))
    assert train(tiny, tmp_path / "run")["steps"] == 2
    note = f"{tmp_path / 'run'}: not locked (Function not implemented); going on\n"
    assert note in capsys.readouterr().err


def test_a_second_ctrl_c_stops_at_once():
    """The first Ctrl-C waits for the step to end and its checkpoint; the second does not."""
    # Python's handler, as in a process started from a terminal (a test run started in the
    # background has Ctrl-C ignored, and training keeps it so)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with StopSignals() as signals:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)  # the handler runs between bytecodes of this thread
            assert signals.pending == signal.SIGINT
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_signal_after_the_last_check_still_reaches_the_handler_from_before():
    """One that comes after the last step's check (say, in its checkpoint) is not dropped."""
    received = []
    before = signal.signal(signal.SIGUSR2, lambda signum, frame: received.append(signum))
    try:
        with StopSignals():
            os.kill(os.getpid(), signal.SIGUSR2)
            time.sleep(0.1)  # the handler runs between bytecodes of this thread
            assert received == []  # only noted, while the block lasts
        assert received == [signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, before)


def test_a_run_does_not_resume_on_data_prepared_again_otherwise(tmp_path, capsys):
    """The same folder, the same vocabulary, other texts (another seed): the run's
    checkpoints are of other data, and it starts afresh, saying what changed."""
    data = tmp_path / "data"
    prepare("demo", data, tokenizer="chars", progress=False, seed=0)
    config = TrainConfig.from_dict(tiny_gpt(data, max_steps=4, eval_splits=""))
    stopped = Trainer(config, tmp_path / "run")
    stopped.train_step()
    stopped.save_checkpoint()
    prepare("demo", data, tokenizer="chars", progress=False, seed=0)  # the same data again
    capsys.readouterr()
    assert Trainer(config, tmp_path / "run", resume=True).state.step == 1
    assert "resuming from step 1 " in capsys.readouterr().err

    prepare("demo", data, tokenizer="chars", progress=False, seed=1)
    assert Trainer(config, tmp_path / "run", resume=True).state.step == 0
    assert capsys.readouterr().err == (
        "checkpoints of a run on other data (meta.json's config, splits changed since) "
        f"moved to {tmp_path / 'run' / 'checkpoints.stale-1'}; starting afresh\n"
    )
