"""The launcher against a real SLURM (tests/slurm/cluster.sh): plain jobs, preemption and
time-limit requeues of a training job that lose no step, and two-task DDP jobs."""

from __future__ import annotations

import json
import os
import pwd
import shlex
import signal
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cloudpickle
import pytest
import torch
from submitit.helpers import DelayedSubmission

from fromscratch import FromScratchError
from fromscratch.launch import Resources, TrainingJob, run

from ..conftest import as_from_a_terminal
from .conftest import tiny_gpt, wait_until

pytestmark = pytest.mark.slurm

# The jobs unpickle this module's functions by value: by reference they would import
# `tests.slurm.test_slurm`, which works only when the job starts in the repository root.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def where_am_i(x):
    """Runs in the job: its answer, and where it ran."""
    return {
        "answer": x * 2,
        "job_id": os.environ.get("SLURM_JOB_ID"),
        "python": sys.executable,
        "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def fail_in_job(message):
    raise RuntimeError(message)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def training_steps(out: Path) -> list[int]:
    """The steps of the training lines of metrics.jsonl (evaluation lines have no loss)."""
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # the line the job is writing right now
    return [r["step"] for r in records if "loss" in r]


def signalled_training(config: dict, out: Path, resources: Resources, log_dir: Path, name: str):
    """(job id, summary) of a training job sent SIGUSR2 once it has trained 20 steps, as
    SLURM does to preempt it or to warn of its time limit."""
    with ThreadPoolExecutor(1) as pool:
        try:
            future = run_in_background(
                pool,
                TrainingJob(),
                {"config": config, "out": str(out)},
                resources=resources,
                log_dir=log_dir,
                name=name,
            )
            wait_until(lambda: len(training_steps(out)) >= 20, 180, "20 training steps")
            assert not future.done(), "training ended before it could be signalled"
            job = job_id_of(name)
            subprocess.run(["scancel", "--signal=USR2", job], check=True)
            return job, future.result(timeout=300)
        finally:
            cancel(name)


def job_logs(log_dir: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(log_dir.glob("*_log.*")))


def job_id_of(name: str) -> str:
    ids = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i"], capture_output=True, text=True)
    return ids.stdout.strip()


def final_state(job: str) -> str:
    """The job's state in SLURM's accounting once it has ended ("" while it has not)."""
    said = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", job, "-o", "State"], capture_output=True, text=True
    )
    state = said.stdout.strip()
    return "" if state in ("", "PENDING", "RUNNING", "REQUEUED", "SUSPENDED") else state


def cancel(name: str) -> None:
    """Leave no job behind when a test fails half-way."""
    subprocess.run(["scancel", "-n", name], capture_output=True)


def run_in_background(pool: ThreadPoolExecutor, function, kwargs, **options):
    return pool.submit(run, function, kwargs, launcher="slurm", **options)


def test_a_function_runs_as_a_slurm_job_with_its_log_under_log_dir(slurm_cluster, tmp_path):
    logs = tmp_path / "logs" / "stage"
    resources = Resources(
        gpus=1, mem_gb=1, time_min=5, max_requeues=5, extra={"comment": "fromscratch-test"}
    )
    result = run(
        where_am_i, {"x": 21}, launcher="slurm", resources=resources, log_dir=logs, name="where"
    )
    assert result["answer"] == 42
    assert result["job_id"]  # it ran under SLURM...
    assert result["python"] == sys.executable  # ...with this Python (the venv)
    assert result["gpus"] == "0"  # one of the node's (fake) GPUs
    job = result["job_id"]
    assert (logs / f"{job}_0_log.out").is_file() and (logs / f"{job}_0_log.err").is_file()
    script = (logs / f"{job}_submission.sh").read_text()
    assert "#SBATCH --comment=fromscratch-test" in script  # `extra` goes to sbatch unchanged
    assert "#SBATCH --gpus-per-node=1" in script
    # the requeues a time limit may cost it, as the job will count them (submitit's own
    # default is 3)
    submitted = DelayedSubmission.load(logs / f"{job}_submitted.pkl")
    assert submitted._timeout_countdown == 5


def threads_in_job():
    return torch.get_num_threads()


def test_every_job_runs_on_the_cpus_slurm_gave_its_task(slurm_cluster, tmp_path):
    """Not on every core of the node (this cluster binds no cores, so torch would take
    both): a stage that cannot resume as one that can."""
    from fromscratch.launch import ResumableStage

    resources = Resources(cpus=1, mem_gb=1, time_min=5)
    for function in (threads_in_job, ResumableStage(threads_in_job)):
        name = unique("threads")
        try:
            threads = run(
                function, {}, launcher="slurm", resources=resources, log_dir=tmp_path, name=name
            )
        finally:
            cancel(name)
        assert threads == 1, function


def test_a_pipeline_run_as_a_slurm_job_of_its_own_submits_jobs_that_run(slurm_cluster, tmp_path):
    """`snakemake --profile slurm` as a job (README): the jobs its rules submit do not take
    that job's SLURM settings for theirs (its --mem-per-cpu beside submitit's --mem: srun
    would refuse to start them)."""
    outer, inner = unique("pipeline"), unique("prepare")
    arguments = {"dataset": "demo", "tokenizer": "chars", "out": str(tmp_path / "data")}
    rule = [str(Path(sys.executable).parent / "fromscratch"), "run", "prepare"]
    rule += ["--launcher", "slurm", "--args", json.dumps(arguments), "--name", inner]
    rule += ["--resources", json.dumps({"cpus": 1, "mem_gb": 1, "time_min": 10})]
    rule += ["--log-dir", str(tmp_path / "logs")]
    job = ["sbatch", "--wait", "--job-name", outer, "--cpus-per-task=1", "--mem-per-cpu=1024"]
    job += ["--time=10", "--output", str(tmp_path / "pipeline.log"), "--wrap", shlex.join(rule)]
    try:
        done = subprocess.run(job, capture_output=True, text=True, timeout=600)
    finally:
        cancel(outer)
        cancel(inner)
    assert done.returncode == 0, (tmp_path / "pipeline.log").read_text()
    assert (tmp_path / "data" / "meta.json").is_file()


def test_a_failing_slurm_job_raises_naming_its_error_and_log(slurm_cluster, tmp_path):
    logs = tmp_path / "logs"
    with pytest.raises(FromScratchError) as caught:
        run(
            fail_in_job,
            {"message": "no such column"},
            launcher="slurm",
            resources=Resources(mem_gb=1, time_min=5),
            log_dir=logs,
            name="failing",
        )
    first_line = str(caught.value).splitlines()[0]
    assert "failing: slurm job" in first_line
    assert "RuntimeError: no such column" in first_line
    log = Path(first_line.split("(log: ")[1].rstrip(")"))
    assert log.parent == logs.absolute() and log.is_file()
    assert "no such column" in log.read_text()


def test_a_job_sbatch_refuses_is_a_one_line_error(slurm_cluster, tmp_path):
    with pytest.raises(FromScratchError) as caught:
        run(
            fail_in_job, {"message": "never runs"}, launcher="slurm", log_dir=tmp_path,
            resources=Resources(partition="nosuch", time_min=5), name="refused",
        )  # fmt: skip
    assert str(caught.value).startswith(
        "refused: slurm submission failed: sbatch: error: invalid partition specified: nosuch; "
    )


def test_a_job_cancelled_in_the_queue_says_it_never_started(slurm_cluster, tmp_path):
    name = f"queued-{os.getpid()}"
    later = Resources(mem_gb=1, time_min=5, extra={"begin": "now+600"})  # pending till then
    with ThreadPoolExecutor(1) as pool:
        waiting = run_in_background(
            pool, where_am_i, {"x": 1}, resources=later, log_dir=tmp_path, name=name
        )
        try:
            job = wait_until(lambda: job_id_of(name), 60, "the job in the queue")
            subprocess.run(["scancel", job], check=True)
            with pytest.raises(FromScratchError) as caught:
                waiting.result(timeout=240)
        finally:
            cancel(name)
    message = str(caught.value)
    assert f"{name}: slurm job " in message and "it never started, and wrote no log" in message
    assert f"CANCELLED by {pwd.getpwuid(os.getuid()).pw_name})" in message  # not by a number


@pytest.mark.slow
def test_a_preempted_training_job_requeues_and_resumes_losing_no_step(
    slurm_cluster, demo_chars, tmp_path
):
    """scancel --signal=USR2 is how SLURM preempts: the loop saves a checkpoint at the end
    of the step, submitit requeues the job, and the requeued job resumes from it."""
    steps, out, logs, name = 1500, tmp_path / "run", tmp_path / "logs", unique("preempt")
    config = tiny_gpt(demo_chars, max_steps=steps)
    job, summary = signalled_training(config, out, Resources(time_min=30), logs, name)
    assert summary["steps"] == steps
    saved = json.loads((out / "summary.json").read_text())
    assert (saved["steps"], saved["slurm_job"]) == (steps, job)  # a requeue keeps the id
    assert training_steps(out) == list(range(1, steps + 1))  # every step, exactly once
    log = job_logs(logs)
    assert "this job is preempted" in log and "Requeued job" in log
    assert log.count("Starting with JobEnvironment") == 2  # the first run and the requeued one


@pytest.mark.slow
def test_a_training_job_out_of_requeues_says_so_and_keeps_its_checkpoint(
    slurm_cluster, demo_chars, tmp_path
):
    """A job shorter than 10 minutes takes any SIGUSR2 for its time limit (submitit's rule):
    with max_requeues=0 the first one ends it, after the loop saved its checkpoint."""
    out, logs, name = tmp_path / "run", tmp_path / "logs", unique("requeues")
    config = tiny_gpt(demo_chars, max_steps=1500)
    with pytest.raises(FromScratchError) as caught:
        signalled_training(config, out, Resources(time_min=5, max_requeues=0), logs, name)
    assert (
        "it reached its time limit (5 min) once more than it may be requeued (max_requeues=0); "
        "its checkpoint is kept, to resume from"
    ) in str(caught.value)
    assert any((out / "checkpoints").glob("step-*.pt"))


@pytest.mark.slow
def test_a_training_job_at_its_time_limit_requeues_and_finishes(
    slurm_cluster, demo_chars, tmp_path
):
    """SLURM itself sends SIGUSR2 about signal_delay_s before the time limit.

    SLURM checks time limits every 30 s and sends the signal at the first check that is
    less than signal_delay_s + 30 s before the limit: with a 2-minute limit and a 60 s delay
    that is 30-60 s into each run (long after the job's signal handlers are in place, long
    before the kill at 2 minutes). A training budget of 60 s (training time, kept across
    requeues) cannot end before the first signal, and the requeued run, signalled about
    47 s in, has time to finish it: one requeue, about 80 s in all.
    """
    out, logs, name = tmp_path / "run", tmp_path / "logs", unique("timeout")
    config = tiny_gpt(demo_chars, clock="time", time_budget_s=60, max_steps=0, checkpoint_every=100)
    summary = run(
        TrainingJob(),
        {"config": config, "out": str(out)},
        launcher="slurm",
        resources=Resources(time_min=2, signal_delay_s=60, max_requeues=3),
        log_dir=logs,
        name=name,
    )
    assert summary["train_time_s"] >= 60
    assert training_steps(out) == list(range(1, summary["steps"] + 1))
    log = job_logs(logs)
    assert "this job is timed-out" in log and "Requeued job" in log


@pytest.mark.slow
def test_a_two_task_job_trains_ddp_like_one_process(slurm_cluster, demo_chars, tmp_path):
    """Two SLURM tasks (gloo on CPU) share the global batch: the same steps as one process."""
    config = tiny_gpt(demo_chars, max_steps=10, checkpoint_every=0)
    logs = tmp_path / "logs"
    two = run(
        TrainingJob(),
        {"config": config, "out": str(tmp_path / "two")},
        launcher="slurm",
        resources=Resources(tasks=2, cpus=1, mem_gb=2, time_min=10),
        log_dir=logs,
        name=unique("ddp"),
    )
    one = run(
        TrainingJob(),
        {"config": config, "out": str(tmp_path / "one")},
        launcher="local",
        log_dir=tmp_path / "local-logs",
        name="ddp-reference",
    )
    assert two["steps"] == one["steps"] == 10
    assert "global_rank=1(2)" in job_logs(logs)  # really two processes
    weights_one = torch.load(tmp_path / "one" / "model.pt", weights_only=False)["model"]
    weights_two = torch.load(tmp_path / "two" / "model.pt", weights_only=False)["model"]
    for key in weights_one:
        torch.testing.assert_close(weights_two[key], weights_one[key], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_preempted_two_task_job_resumes_as_if_never_stopped(slurm_cluster, demo_chars, tmp_path):
    """A multi-GPU job preempted: SLURM signals both tasks, they save one checkpoint at the
    same step, the first task requeues the job, and the requeued job ends with the weights
    of the same job never stopped, dropout masks and all (each task draws its own). (The
    second task, left training, fails on its next step's gradients once the first has gone;
    SLURM restarts both.)"""
    config = tiny_gpt(demo_chars, max_steps=1000, checkpoint_every=0, eval_splits="")
    # 30 minutes: submitit takes any SIGUSR2 in the last 10 for the time limit's
    resources = Resources(tasks=2, cpus=1, mem_gb=2, time_min=30)
    out, logs, name = tmp_path / "stopped", tmp_path / "logs", unique("ddp-preempt")
    with ThreadPoolExecutor(1) as pool:
        try:
            future = run_in_background(
                pool, TrainingJob(), {"config": config, "out": str(out)},
                resources=resources, log_dir=logs, name=name,
            )  # fmt: skip
            wait_until(lambda: len(training_steps(out)) >= 20, 180, "20 training steps")
            assert not future.done(), "training ended before it could be preempted"
            subprocess.run(["scancel", "--signal=USR2", job_id_of(name)], check=True)
            summary = future.result(timeout=300)
        finally:
            cancel(name)
    assert summary["steps"] == 1000
    assert training_steps(out) == list(range(1, 1001))  # every step, exactly once
    log = job_logs(logs)
    assert "this job is preempted" in log and "Requeued job" in log
    whole = run(
        TrainingJob(),
        {"config": config, "out": str(tmp_path / "whole")},
        launcher="slurm",
        resources=resources,
        log_dir=tmp_path / "whole-logs",
        name=unique("ddp-whole"),
    )
    assert whole["steps"] == 1000
    stopped = torch.load(out / "model.pt", weights_only=False)["model"]
    never = torch.load(tmp_path / "whole" / "model.pt", weights_only=False)["model"]
    for key in never:
        torch.testing.assert_close(stopped[key], never[key], rtol=0, atol=0)


LAUNCHER_SCRIPT = """
import sys, time
from fromscratch.launch import Resources, run

def sleep(seconds):
    time.sleep(seconds)

resources = Resources(mem_gb=1, time_min=10)
run(sleep, {"seconds": 600}, launcher="slurm", resources=resources, log_dir=sys.argv[1],
    name=sys.argv[2])
"""


def test_a_rule_process_waits_on_its_job_without_torch(slurm_cluster, tmp_path):
    """`fromscratch run --launcher slurm`, as each rule runs it: dozens wait at once on a
    login node, so none may load torch (over 200 MB and 2-3 s each); the job does."""
    name = unique("light")
    arguments = {"dataset": "demo", "tokenizer": "chars", "out": str(tmp_path / "data")}
    resources = {"mem_gb": 2, "time_min": 10}
    command = [Path(sys.executable).parent / "fromscratch", "run", "prepare"]
    command += ["--launcher", "slurm", "--args", json.dumps(arguments)]
    command += ["--resources", json.dumps(resources), "--log-dir", str(tmp_path / "logs")]
    launcher = subprocess.Popen(
        [*command, "--name", name, "--threads", "2"], stdout=subprocess.PIPE, text=True
    )
    try:
        wait_until(lambda: job_id_of(name), 60, "the job to be submitted")
        assert "libtorch" not in Path(f"/proc/{launcher.pid}/maps").read_text()
        out, _ = launcher.communicate(timeout=300)
        assert launcher.returncode == 0
        assert json.loads(out)["train"] == 4000  # examples, as the stage reports them
        assert (tmp_path / "data" / "meta.json").is_file()
    finally:
        launcher.kill()
        cancel(name)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])
def test_stopping_the_launcher_cancels_its_job(slurm_cluster, tmp_path, stop):
    """Snakemake stops a rule's process with SIGTERM, a closed terminal sends SIGHUP: its
    SLURM job must not run on."""
    name = unique("orphan")
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER_SCRIPT, str(tmp_path / "logs"), name],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_from_a_terminal,
    )
    try:
        job = wait_until(lambda: job_id_of(name), 60, "the job to be submitted")
        launcher.send_signal(stop)
        assert launcher.wait(timeout=60) != 0
        wait_until(lambda: not job_id_of(name), 60, f"job {job} to leave the queue")
        # the accounting records a job's end a moment after it leaves the queue
        state = wait_until(lambda: final_state(job), 60, f"job {job}'s end in the accounting")
        assert state.startswith("CANCELLED")
    finally:
        launcher.kill()
        cancel(name)
