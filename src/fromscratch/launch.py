"""One launcher, three modes: run a stage function here, in submitit's debug mode, or on SLURM.

    run(function, kwargs, launcher="slurm", resources=Resources(gpus=1), log_dir=..., name=...)

Each pipeline rule is one process that calls `run` and waits for its result, so Snakemake
owns the DAG and submitit owns the job: `local` calls the function in this process,
`debug` runs it through submitit's DebugExecutor (in this process as well, but as a
submitit job, with its job folder and log paths: a dry run of the submission path), and
`slurm` submits one SLURM job with submitit and polls it until it ends. The job runs
with this process's Python (`sys.executable`, the venv where fromscratch is installed),
so the pickled function imports there as it does here.

A `submitit.helpers.Checkpointable` function (`TrainingJob`, and `ResumableStage` for the
other stages that save checkpoints) survives preemption and time limits: SLURM sends
SIGUSR2 (`--signal=USR2@signal_delay_s` before the limit, or `scancel --signal=USR2`),
submitit asks the function for a `checkpoint()` submission, requeues the job and exits;
the requeued job calls that submission. Every failure
becomes a `FromScratchError` naming the job's error and the path of its log.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import re
import shutil
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import FailedJobError
from submitit.helpers import Checkpointable, DelayedSubmission, TorchDistributedEnvironment

from fromscratch import (
    FromScratchError,
    Interrupted,
    exit_on_termination,
    message_of_ours,
    stop_signal,
)
from fromscratch.config import Config
from fromscratch.io import make_folder

LAUNCHERS = ("local", "debug", "slurm")
TAIL_LINES = 15  # lines of the job's error log that a failure message carries


@dataclass
class Resources(Config):
    """What one job asks SLURM for; passed through unchanged to submitit and sbatch.

    partition / account / qos / constraint: empty means the cluster's default.
    gpus (per node), cpus (per task), mem_gb (per node), time_min (the time limit),
    tasks (processes per node: >1 runs DistributedDataParallel, one process per task).
    signal_delay_s: SLURM sends SIGUSR2 this long before the time limit, so a
    checkpointable job can save and requeue itself; max_requeues: how many times it may
    be requeued at its time limit before it counts as failed (submitit's max_num_timeout;
    preemptions are not counted, except that submitit counts every SIGUSR2 as a time
    limit once 80% of time_min, or all but 10 minutes of it, have passed).
    extra: any other sbatch option, e.g. {"mail_type": "END", "exclusive": True}.
    """

    partition: str = ""
    account: str = ""
    qos: str = ""
    gpus: int = 0
    cpus: int = 1
    mem_gb: float = 4
    time_min: int = 60
    constraint: str = ""
    tasks: int = 1
    signal_delay_s: int = 90
    max_requeues: int = 3
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()  # the ranges of the workflow's schema, for `run` too
        self._check_not_negative("gpus", "signal_delay_s", "max_requeues")
        self._check_positive("cpus", "time_min", "tasks")
        if self.mem_gb <= 0:
            self._fail("mem_gb", f"{self.mem_gb!r} must be more than 0")
        if self.signal_delay_s >= 60 * self.time_min:  # the warning would come at the start
            self._fail(
                "signal_delay_s",
                f"{self.signal_delay_s} s must be less than time_min={self.time_min} minutes",
            )
        if 0 < self.gpus < self.tasks:  # each process trains on a GPU of its own
            self._fail(
                "tasks",
                f"{self.tasks} processes a node need as many GPUs, not gpus={self.gpus} "
                "(or gpus=0: DistributedDataParallel on CPUs)",
            )

    @classmethod
    def from_dict(cls, d: dict | None) -> Resources:
        """Build from a config mapping; a wrong key or type fails here, before any job starts."""
        return super().from_dict(d or {})

    def submitit_parameters(self, name: str) -> dict[str, Any]:
        """The AutoExecutor parameters: generic ones, then `slurm_`-prefixed ones."""
        params: dict[str, Any] = {
            "name": name,
            "timeout_min": self.time_min,
            "cpus_per_task": self.cpus,
            "mem_gb": self.mem_gb,
            "tasks_per_node": self.tasks,
            "slurm_signal_delay_s": self.signal_delay_s,
        }
        if self.gpus:  # no GPU request at all on CPU jobs, not a request for zero
            params["gpus_per_node"] = self.gpus
        for key in ("partition", "account", "qos", "constraint"):
            if getattr(self, key):
                params[f"slurm_{key}"] = getattr(self, key)
        if self.extra:
            params["slurm_additional_parameters"] = dict(self.extra)
        return params


def run(
    function: Callable[..., Any],
    kwargs: dict[str, Any],
    *,
    launcher: str,
    resources: Resources | None = None,
    log_dir: str | os.PathLike,
    name: str,
) -> Any:
    """Run function(**kwargs) locally or as one submitit job; return its result.

    A failed job raises FromScratchError with the job's error (its last lines) and the
    path of its log. A multi-task job returns the result of task 0.
    """
    if launcher not in LAUNCHERS:
        raise FromScratchError(f"unknown launcher {launcher!r}; allowed: {', '.join(LAUNCHERS)}")
    resources = resources or Resources()
    log_dir = make_folder(Path(log_dir).absolute())  # a file there: one line, not an OSError
    if launcher == "local":
        return _run_local(function, kwargs, log_dir, name)
    if launcher == "slurm" and not shutil.which("sbatch"):
        raise FromScratchError(
            f"{name}: launcher slurm, but no sbatch here (not a SLURM machine, or its module "
            "not loaded); allowed here: launcher local"
        )
    executor = submitit.AutoExecutor(
        folder=log_dir, cluster=launcher, slurm_max_num_timeout=resources.max_requeues
    )
    executor.update_parameters(**resources.submitit_parameters(name))
    # Every job runs on as many threads as SLURM gave its task. A Checkpointable (a
    # TrainingJob, a ResumableStage) sees to that itself: submitit must be handed it as it
    # is, to requeue it.
    job_function = function if isinstance(function, Checkpointable) else InAllocation(function)
    try:
        # without the SLURM variables of a job this process may run in (a pipeline run as
        # a job of its own): the job's srun would take that job's settings for its own
        with submitit.helpers.clean_env():
            job = executor.submit(job_function, **kwargs)
    except FailedJobError as error:  # sbatch refused it: a partition, an account, a limit
        said = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
        message = f"{name}: {launcher} submission failed: {said}"
        raise FromScratchError(message) from None
    if launcher == "slurm":  # where to look while it runs: squeue -j ID, tail -f LOG
        print(f"{name}: SLURM job {job.job_id}, log {job.paths.stdout}", file=sys.stderr)
    with _cancel_on_interrupt(job):
        return _outcome(job, launcher, name, resources)


def _run_local(function: Callable[..., Any], kwargs: dict[str, Any], log_dir: Path, name: str):
    """Call the function here; a failure leaves its traceback in log_dir, like a job's log."""
    try:
        return function(**kwargs)
    except Interrupted:  # not a failure: the run's checkpoint is there to resume from
        raise
    except Exception as error:
        stopped = stop_signal()
        if stopped is not None:  # the stop itself, come out as a library's error
            raise SystemExit(128 + stopped) from error
        log = log_dir / f"{name}_local_log.err"
        log.write_text("".join(traceback.format_exception(error)), encoding="utf-8")
        raise _failure(name, "local run", _headline(error), log) from error


def _outcome(job: submitit.Job, launcher: str, name: str, resources: Resources) -> Any:
    """Wait for the job; its result, or a FromScratchError naming its error and log.

    `exception()` waits and returns the error rather than raising it: DebugJob.results()
    would open pdb on an error, which blocks a pipeline (or a test) for ever.
    """
    error = job.exception()
    if error is None:
        return job.results()[0]
    task = _failed_task(job)
    log = task.paths.stderr
    if launcher == "debug":  # it ran here: its traceback is in `error`, not in a log yet
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("".join(traceback.format_exception(error)), encoding="utf-8")
        headline = _headline(error)
    elif "timed-out too many times" in str(error):  # submitit's words: out of requeues
        limit, requeues = resources.time_min, resources.max_requeues
        headline = (
            f"it reached its time limit ({limit} min) once more than it may be requeued "
            f"(max_requeues={requeues}); its checkpoint is kept, to resume from (more "
            "time: a larger time_min or max_requeues)"
        )
    elif isinstance(error, FailedJobError):  # the function raised: its traceback is in error
        headline = _last_line(_trace(str(error)))
    else:  # UncompletedJobError: killed, cancelled, out of memory...
        state = _slurm_state(job)
        headline = f"it ended without a result (SLURM state {state})"
        if not log.exists():  # cancelled while it waited in the queue
            headline = f"it never started, and wrote no log (SLURM state {state})"
    raise _failure(name, f"{launcher} job {job.job_id}", headline, log)


def _slurm_state(job: submitit.Job) -> str:
    """The job's state as sacct says it, with the user who cancelled it by name, not by
    number ("CANCELLED by alice")."""
    state = job.get_info().get("State") or job.state
    if (by := re.fullmatch(r"(.* by )(\d+)", state)) is not None:
        with contextlib.suppress(KeyError):
            state = by[1] + pwd.getpwuid(int(by[2])).pw_name
    return state


def _failed_task(job: submitit.Job) -> submitit.Job:
    """The first task of the job that failed (the job itself when it has one task)."""
    for i in range(job.num_tasks):
        if job.task(i).exception() is not None:
            return job.task(i)
    return job


class JobFailed(FromScratchError):
    """A stage that failed: a one-line message naming its error and log, and `details`, the
    log's last lines (none where its error is one of ours: that line says it all)."""

    def __init__(self, message: str, details: str = ""):
        super().__init__(message)
        self.details = details


def _failure(name: str, what: str, headline: str, log: Path) -> JobFailed:
    ours = message_of_ours(headline)
    message = f"{name}: {what} failed: {ours or headline} (log: {log})"
    tail = "" if ours else _tail(log)
    return JobFailed(message, f"--- last lines of {log.name} ---\n{tail}" if tail else "")


def _headline(error: BaseException) -> str:
    return _last_line("".join(traceback.format_exception_only(error)))


def _trace(text: str) -> str:
    """The traceback inside submitit's FailedJobError message (between its dashed rules)."""
    parts = text.split("----------------------\n")
    return parts[1] if len(parts) >= 3 else text


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no error message"


def _tail(log: Path, lines: int = TAIL_LINES) -> str:
    if not log.is_file():
        return ""
    text = log.read_text(encoding="utf-8", errors="replace").rstrip().splitlines()
    return "\n".join(text[-lines:])


@contextlib.contextmanager
def _cancel_on_interrupt(job: submitit.Job) -> Iterator[None]:
    """Cancel the job when this process is interrupted or terminated while it waits.

    Snakemake stops a rule's process with SIGTERM (or Ctrl-C), and a closed terminal or a
    dropped ssh session sends SIGHUP: without this its SLURM job would run on, orphaned,
    and a rerun would start a second job writing to the same run folder.
    """
    try:
        with exit_on_termination():
            yield
    except (KeyboardInterrupt, SystemExit):
        if isinstance(job, submitit.SlurmJob):
            job.cancel(check=False)
        raise


class ResumingJob(Checkpointable):
    """A job whose function saves checkpoints and takes `resume` (by name): a preempted or
    timed-out job is requeued and resumes from the checkpoint it saved on SIGUSR2.

    The training loop handles the signal first (it finishes the step and saves), then
    calls submitit's handler, which calls `checkpoint()` below, requeues the job and exits.
    A job that is not Checkpointable would fail at its time limit instead.
    """

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        return DelayedSubmission(self, *args, **{**kwargs, "resume": True})


class InAllocation:
    """A stage function as a job runs it: on as many threads as SLURM gave its task, with
    the function's own signature (which `fromscratch run` checks)."""

    def __init__(self, function: Callable[..., Any]):
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        _use_allocated_cpus()
        return self.__wrapped__(*args, **kwargs)


class ResumableStage(InAllocation, ResumingJob):
    """A stage function with a `resume` argument (the sentence VAE, the seq2seq runs) as a
    ResumingJob."""


class TrainingJob(ResumingJob):
    """`fromscratch.train.train` as a ResumingJob, one process per SLURM task."""

    def __call__(self, config: dict, out: str, resume: bool = False) -> dict:
        from fromscratch.train import TrainConfig, train

        tasks = _job_tasks()
        if tasks > 1:
            # RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT: the loop then runs DDP.
            # Each rank keeps every GPU of the node visible and picks its own by LOCAL_RANK.
            TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        _use_allocated_cpus()
        return train(TrainConfig.from_dict(config), out, resume=resume)


def _job_tasks() -> int:
    """How many tasks (processes) this submitit job has; 1 outside a job."""
    try:
        return submitit.JobEnvironment().num_tasks
    except RuntimeError:  # not inside a submitit job: the local launcher
        return 1


def _use_allocated_cpus() -> None:
    """In a SLURM job, use as many threads as SLURM gave this task, not as many as the
    node has. Elsewhere (the local and debug launchers, in a SLURM allocation too) the
    caller's setting stays: `fromscratch run --threads`, Snakemake's threads."""
    try:
        if submitit.JobEnvironment().cluster != "slurm":
            return
    except RuntimeError:  # not inside a submitit job
        return
    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    if cpus and cpus.isdigit():
        import torch

        torch.set_num_threads(int(cpus))
