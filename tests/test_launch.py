"""The launcher without a cluster: `local` and `debug` run the function here and return its
result, failures become FromScratchError naming the log, resources are checked up front.
(The same through a real SLURM: tests/slurm/.)"""

import json
import os
import pickle
import signal

import pytest
from submitit.helpers import DelayedSubmission

from fromscratch import FromScratchError, Interrupted, exit_on_termination, message_of_ours
from fromscratch.cli import main
from fromscratch.launch import LAUNCHERS, Resources, TrainingJob, run

from .conftest import tiny_gpt as base_tiny_gpt


def multiply(x, y):
    return x * y


def fail(message):
    raise ValueError(message)


def interrupted_at(step):
    raise Interrupted(signal.SIGINT, step)


class Counter:
    """A callable with state, as a stage object might be."""

    def __init__(self):
        self.calls = 0

    def __call__(self, step):
        self.calls += 1
        return {"step": step, "calls": self.calls}


def tiny_gpt(data, **overrides):
    return {
        **base_tiny_gpt(data, dropout=0.0),
        "max_steps": 6,
        "checkpoint_every": 3,
        "eval_splits": "",
        **overrides,
    }


@pytest.mark.parametrize("launcher", ["local", "debug"])
def test_runs_the_function_and_returns_its_result(launcher, tmp_path):
    logs = tmp_path / "logs"
    assert run(multiply, {"x": 6, "y": 7}, launcher=launcher, log_dir=logs, name="mul") == 42
    assert logs.is_dir()


def test_debug_runs_a_callable_object(tmp_path):
    counter = Counter()
    result = run(counter, {"step": 3}, launcher="debug", log_dir=tmp_path, name="counter")
    assert result == {"step": 3, "calls": 1}


@pytest.mark.parametrize("launcher", ["local", "debug"])
def test_an_exception_becomes_a_fromscratch_error_naming_the_log(launcher, tmp_path):
    logs = tmp_path / "logs"
    with pytest.raises(FromScratchError) as caught:
        run(fail, {"message": "the data is gone"}, launcher=launcher, log_dir=logs, name="stage")
    message = str(caught.value)
    first_line = message.splitlines()[0]
    assert "stage" in first_line and launcher in first_line
    assert "ValueError: the data is gone" in first_line
    log = next(p for p in logs.iterdir() if p.suffix == ".err")
    assert f"(log: {log})" in first_line
    assert "Traceback" in log.read_text() and "the data is gone" in log.read_text()
    assert "\n" not in message  # the log's last lines come along, apart
    assert "the data is gone" in caught.value.details.splitlines()[-1]


def test_a_stage_error_of_ours_is_its_one_line(tmp_path, capsys, monkeypatch):
    """A FromScratchError in a stage (a user's mistake) is named as it is, without the
    traceback around it; the log keeps that."""
    monkeypatch.setenv("FROMSCRATCH_CACHE", str(tmp_path / "cache"))  # nothing there yet
    logs = tmp_path / "logs"
    missing = tmp_path / "no-mirror"
    spec = {"dataset": "shakespeare", "out": str(tmp_path / "s"), "mirror": str(missing)}
    args = ["run", "prepare", "--args", json.dumps(spec)]
    assert main([*args, "--log-dir", str(logs), "--name", "prep"]) == 1
    err = capsys.readouterr().err
    log = logs / "prep_local_log.err"
    assert err.startswith(f"fromscratch: error: prep: local run failed: mirror {missing}: no such")
    assert err.endswith(f" (log: {log})\n") and err.count("\n") == 1
    assert "Traceback" in log.read_text()


def stopped_inside_a_library():
    """SIGTERM while a library's C code runs, which turns the handler's SystemExit into an
    error of its own (numpy's array.tofile, into a TypeError)."""
    try:
        os.kill(os.getpid(), signal.SIGTERM)
    except SystemExit:
        raise TypeError("expected str, bytes or os.PathLike object, not BufferedWriter") from None


def test_a_stop_that_a_library_turned_into_its_own_error_is_still_the_stop(tmp_path):
    """The stage exits as a stopped process does (128 + the signal), not as a failure."""
    with pytest.raises(SystemExit) as stop, exit_on_termination():  # as `fromscratch` runs
        run(stopped_inside_a_library, {}, launcher="local", log_dir=tmp_path, name="prepare")
    assert stop.value.code == 128 + signal.SIGTERM
    assert not list(tmp_path.iterdir())  # no failure's log
    # the next block starts afresh: an error there is a failure again
    with pytest.raises(FromScratchError), exit_on_termination():
        run(fail, {"message": "the data is gone"}, launcher="local", log_dir=tmp_path, name="x")


def test_an_interrupted_run_is_no_failure_here(tmp_path):
    """Ctrl-C in a local run: the stage's checkpoint message comes through as it is, no
    traceback in a log, and the exception survives the pickling a submitit job puts it
    through."""
    with pytest.raises(Interrupted) as caught:
        run(interrupted_at, {"step": 7}, launcher="local", log_dir=tmp_path, name="train")
    assert str(caught.value) == (
        "stopped by Ctrl-C at step 7; checkpoint saved, resume with --resume"
    )
    assert not list(tmp_path.iterdir())
    again = pickle.loads(pickle.dumps(caught.value))
    assert (again.signum, again.step, str(again)) == (signal.SIGINT, 7, str(caught.value))


def test_slurm_where_there_is_no_slurm_is_a_one_line_error(tmp_path, monkeypatch):
    """A laptop, or a login node before `module load slurm`: not submitit's traceback."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun
    with pytest.raises(FromScratchError, match=r"^mul: launcher slurm, but no sbatch here "):
        run(multiply, {"x": 1, "y": 2}, launcher="slurm", log_dir=tmp_path / "logs", name="mul")


def test_an_unknown_launcher_is_rejected(tmp_path):
    with pytest.raises(FromScratchError, match=r"unknown launcher 'cloud'; allowed: local, debug"):
        run(multiply, {"x": 1, "y": 2}, launcher="cloud", log_dir=tmp_path, name="mul")
    assert LAUNCHERS == ("local", "debug", "slurm")


def test_resources_from_dict_rejects_unknown_keys():
    with pytest.raises(FromScratchError) as caught:
        Resources.from_dict({"gpus": 1, "gpu_type": "a100", "walltime": 5})
    message = str(caught.value)
    assert "\n" not in message
    assert "gpu_type, walltime" in message
    assert "allowed: partition, account, qos, gpus, cpus, mem_gb, time_min" in message


@pytest.mark.parametrize(
    ("key", "value"), [("gpus", "2"), ("time_min", 1.5), ("cpus", True), ("extra", ["x"])]
)
def test_resources_from_dict_rejects_wrong_types(key, value):
    with pytest.raises(FromScratchError, match=f"Resources.{key}: .* is not of type"):
        Resources.from_dict({key: value})


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("time_min", -5, "-5 must be at least 1"),
        ("tasks", 0, "0 must be at least 1"),
        ("cpus", 0, "0 must be at least 1"),
        ("gpus", -1, "-1 must be 0 or more"),
        ("mem_gb", 0, "0 must be more than 0"),
    ],
)
def test_resources_out_of_range_fail_before_any_job(key, value, named):
    """sbatch would refuse some only after the wait for the check, and run others."""
    with pytest.raises(FromScratchError, match=f"Resources.{key}: {named}"):
        Resources.from_dict({key: value})


def test_a_time_limit_warning_before_the_job_could_start_fails_before_any_job():
    """SLURM would send its warning at once, and the job would checkpoint and requeue
    itself, over and over."""
    with pytest.raises(FromScratchError, match=r"^Resources\.signal_delay_s: 60 s must be less"):
        Resources.from_dict({"time_min": 1, "signal_delay_s": 60})
    assert Resources.from_dict({"time_min": 1, "signal_delay_s": 59}).signal_delay_s == 59


def test_more_training_processes_than_gpus_fail_before_any_job():
    """Each process trains on a GPU of its own: the ones without would fail in the job."""
    with pytest.raises(FromScratchError, match=r"^Resources\.tasks: 4 processes a node need as"):
        Resources.from_dict({"gpus": 1, "tasks": 4})
    assert Resources.from_dict({"gpus": 0, "tasks": 4}).tasks == 4  # on CPUs
    assert Resources.from_dict({"gpus": 4, "tasks": 4}).tasks == 4


def test_resources_pass_through_to_submitit_unchanged():
    resources = Resources.from_dict(
        {
            "partition": "gpu",
            "account": "course",
            "qos": "short",
            "constraint": "a100",
            "gpus": 2,
            "cpus": 8,
            "mem_gb": 32,
            "time_min": 240,
            "tasks": 2,
            "signal_delay_s": 120,
            "extra": {"mail_type": "END"},
        }
    )
    assert resources.submitit_parameters("train") == {
        "name": "train",
        "timeout_min": 240,
        "gpus_per_node": 2,
        "cpus_per_task": 8,
        "mem_gb": 32,
        "tasks_per_node": 2,
        "slurm_signal_delay_s": 120,
        "slurm_partition": "gpu",
        "slurm_account": "course",
        "slurm_qos": "short",
        "slurm_constraint": "a100",
        "slurm_additional_parameters": {"mail_type": "END"},
    }
    assert Resources.from_dict(None) == Resources()
    assert "gpus_per_node" not in Resources().submitit_parameters("cpu-only")


def test_training_job_runs_through_debug(demo_chars, tmp_path):
    out = tmp_path / "run"
    summary = run(
        TrainingJob(),
        {"config": tiny_gpt(demo_chars), "out": str(out)},
        launcher="debug",
        log_dir=tmp_path / "logs",
        name="train",
    )
    assert summary["steps"] == 6
    assert (out / "model.pt").is_file() and (out / "summary.json").is_file()
    assert "WORLD_SIZE" not in os.environ  # one task: no distributed environment exported


def test_training_job_checkpoint_resubmits_itself_resuming(demo_chars, tmp_path):
    """What submitit calls on SIGUSR2: the same job, now resuming from its checkpoint."""
    job, config, out = TrainingJob(), tiny_gpt(demo_chars, max_steps=3), str(tmp_path / "run")
    first = job(config, out)
    # as if SIGUSR2 had come right after the step-3 checkpoint, before the run's end
    (tmp_path / "run" / "checkpoints" / "finished").unlink()
    again = job.checkpoint(config, out)
    assert isinstance(again, DelayedSubmission)
    assert again.function is job and again.args == (config, out)
    assert again.kwargs == {"resume": True}
    # Resumed from the step-3 checkpoint there is nothing left to train: the elapsed training
    # time is the checkpoint's, to the last bit (a fresh start would measure its own).
    resumed = again.result()
    assert resumed["steps"] == 3
    assert resumed["train_time_s"] == first["train_time_s"]


@pytest.mark.parametrize(
    ("stage", "args", "resources", "named"),
    [
        ("train", '{"config": "c.yaml", "out": "o", "nope": 1}', "{}", "unknown nope; train takes"),
        ("sample", '{"out": "s.txt"}', "{}", "missing a required argument: 'model'"),
        ("perceiver-plan", '{"contexts": [64]}', "{}", "missing a required argument: 'data'"),
        ("train", "[]", "{}", "--args must be a JSON object"),
        ("train", "{}", "[1]", "--resources must be a JSON object"),
    ],
)
def test_run_checks_the_stage_arguments_before_launching(stage, args, resources, named, capsys):
    from fromscratch.cli import main

    # slurm: a bad rule must fail here, before anything is submitted
    command = ["run", stage, "--args", args, "--resources", resources, "--launcher", "slurm"]
    assert main(command) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and named in err


def test_a_log_dir_that_is_a_file_is_a_one_line_error(tmp_path):
    logs = tmp_path / "logs"
    logs.write_text("mine")
    with pytest.raises(FromScratchError) as caught:
        run(multiply, {"x": 1, "y": 2}, launcher="local", log_dir=logs, name="mul")
    assert str(caught.value) == f"{logs}: cannot be made a folder: a file is there"
    assert logs.read_text() == "mine"


def test_a_training_job_whose_out_is_a_file_is_a_one_line_error(demo_chars, tmp_path):
    """Not the FileExistsError of making the run folder (sole_run)."""
    out = tmp_path / "run"
    out.write_text("mine")
    with pytest.raises(FromScratchError) as caught:
        TrainingJob()(tiny_gpt(demo_chars), str(out))
    assert str(caught.value) == f"{out}: cannot be made a folder: a file is there"
    with pytest.raises(FromScratchError) as caught:
        TrainingJob()(tiny_gpt(demo_chars), str(out / "below"))
    message = f"{out / 'below'}: cannot be made a folder: {out} is a file, not a folder"
    assert str(caught.value) == message
    assert out.read_text() == "mine"


def test_every_stage_that_can_resume_is_requeued_resuming():
    """A stage that takes `resume` is launched as a submitit Checkpointable: preempted or
    at its time limit, its job requeues and goes on from its checkpoint."""
    import inspect

    from fromscratch.launch import ResumableStage
    from fromscratch.stages import STAGES, get_stage

    resumable = {n for n, f in STAGES.items() if f and "resume" in inspect.signature(f).parameters}
    assert {"sentence-vae", "encoder-decoder"} <= resumable
    assert isinstance(get_stage("train"), TrainingJob)
    for name in STAGES.keys() - {"train"}:
        assert isinstance(get_stage(name), ResumableStage) is (name in resumable), name


@pytest.mark.parametrize("launcher", ["local", "debug"])
def test_a_stage_run_here_keeps_its_threads_in_a_slurm_allocation_too(
    launcher, monkeypatch, tmp_path
):
    """SLURM_CPUS_PER_TASK sets a job's threads only in a SLURM job of its own
    (tests/slurm); run here, inside an allocation (`sbatch -c 16` around a pipeline),
    the stage keeps what `fromscratch run --threads` (Snakemake's threads) set."""
    import inspect

    import torch

    from fromscratch.launch import ResumableStage

    def stage(out: str, resume: bool = False) -> tuple:
        return torch.get_num_threads(), resume

    job = ResumableStage(stage)
    assert inspect.signature(job) == inspect.signature(stage)  # what `run` checks --args with
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        monkeypatch.setenv("SLURM_CPUS_PER_TASK", "2")
        assert run(job, {"out": "o"}, launcher=launcher, log_dir=tmp_path, name="t") == (1, False)
        assert job.checkpoint("o").result() == (1, True)  # requeued: resuming
    finally:
        torch.set_num_threads(threads)


def test_only_our_errors_reach_the_user_as_they_are():
    """The last line of another process's traceback: ours is a message for the user, any
    other an error to show as it is, with its type."""
    assert message_of_ours("fromscratch.train.config.ConfigError: lr: 0 must be") == "lr: 0 must be"
    assert message_of_ours("fromscratch.FromScratchError: device 'cuda'") == "device 'cuda'"
    assert message_of_ours("RuntimeError: fromscratch.FromScratchError: x") is None
    assert message_of_ours("submitit.core.utils.UncompletedJobError: timed-out") is None
