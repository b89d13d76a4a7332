"""Tracking: local metric files first, Weights & Biases alongside.

Every run writes, in its output folder:
- `metrics.jsonl`: one JSON object per logged step ({"step": …, "loss": …, …});
- `summary.json`: the final metrics, the config, the git commit (and the code's changes
  since), package versions, device, host, SLURM job id, wall time and tokens/s (written
  atomically at the end).
The figures read only these files. The same metrics go to W&B (mode online, offline or
disabled), with the run's group, job type, tags and full config. On resume the same W&B
run continues (its id is kept in the checkpoint, `resume="allow"`), and the local metric
lines written after the checkpoint are dropped so that no line appears twice. A run killed
outright (SIGKILL) also loses what W&B's service had not yet written to its offline file
(it writes in blocks, seconds apart), and leaves that file cut inside a record: a resumed
run ends its earlier offline files at the checkpoint, on a whole record, and sends W&B the
kept lines past the last step they hold. When W&B
cannot reach its server at the start, the run goes on offline after waiting for it at most
INIT_TIMEOUT_S seconds (online mode only; W&B's own finish may still wait to upload what
it has not sent).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import fromscratch
from fromscratch import FromScratchError
from fromscratch.config import Config
from fromscratch.io import atomic_path, disk_errors_named, set_aside, write_bytes, write_json

INIT_TIMEOUT_S = 30
WANDB_MODES = ("online", "offline", "disabled")


def offline_records(run_file: Path) -> Iterator[Any]:
    """The records of an offline W&B run's .wandb file, up to the first one cut short by a
    kill or that does not parse."""
    for record, _ in _whole_records(run_file.read_bytes()):
        yield record


def _whole_records(data: bytes) -> Iterator[tuple[Any, int]]:
    """Each whole record of a .wandb file's bytes, with the offset where it ends. W&B's
    service writes it in LevelDB's log format: 32 KiB blocks of chunks after a 7-byte file
    header, each chunk with a 7-byte header (checksum, length, FULL/FIRST/MIDDLE/LAST),
    each record one of W&B's protocol buffers."""
    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2

    block, pos, pieces = 32768, 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        if kind == 0 or pos + 7 + length > len(data):  # zeros, or the end of what was written
            return
        pieces += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST: a record is complete
            record = wandb_internal_pb2.Record()
            try:
                record.ParseFromString(pieces)
            except DecodeError:
                return
            pieces = b""
            yield record, pos


def cut_offline_file(run_file: Path, step: int) -> int:
    """Cut an offline .wandb file after its last whole record before the first history row
    at `step` or past it; returns how many records it keeps. `wandb sync` stops at a record
    cut short by a kill (and uploads nothing at all, of any run in the same call, from a
    file without one whole record), and it uploads every row of a run's files, in the
    files' order: rows that a resumed start logs again would come twice. That includes the
    checkpoint's own step, where a run stopped in its final evaluation (or after it)
    resumes to log that evaluation once more: the resumed start writes the whole row."""
    data = run_file.read_bytes()
    end, kept = 7, 0
    for record, record_end in _whole_records(data):
        if record.WhichOneof("record_type") == "history" and record.history.step.num >= step:
            break
        end, kept = record_end, kept + 1
    if end < len(data):
        write_bytes(run_file, data[:end])
    return kept


def offline_history_steps(run_file: Path) -> Iterator[int]:
    """The steps of the history rows in an offline W&B run's .wandb file."""
    for record in offline_records(run_file):
        if record.WhichOneof("record_type") == "history":
            yield record.history.step.num


def _git(folder: Path, *args: str) -> str | None:
    """git's output, run in `folder`; None outside a git checkout."""
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, cwd=folder)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state(folder: Path = Path(__file__).parent) -> dict:
    """The commit the code in `folder` (the package's) is at, and the files under it
    changed or added since (as `git status` lists them: a student's own variant, not yet
    committed): a run reproduces from its commit alone only where that list is empty."""
    commit = (_git(folder, "rev-parse", "HEAD") or "").strip() or None
    if commit is None:
        return {"git_commit": None, "git_changes": None}
    changes = _git(folder, "status", "--porcelain", "--untracked-files=all", "--", ".") or ""
    return {"git_commit": commit, "git_changes": changes.splitlines()}


def environment() -> dict:
    """What ran the job: the code's commit, the versions of Python, torch and numpy, the
    GPU or processor, the host, the SLURM job and the command line."""
    from importlib.metadata import version

    # the installed versions, not imported ones: a figure job never imports torch (nor ran
    # anything on a GPU, which is why the GPU is asked for only where torch is loaded)
    torch = sys.modules.get("torch")
    on_a_gpu = torch is not None and torch.cuda.is_available()
    processor = torch.cuda.get_device_name() if on_a_gpu else platform.processor()
    return {
        **git_state(),
        "python": platform.python_version(),
        "versions": {
            "fromscratch": fromscratch.__version__,
            "torch": version("torch"),
            "numpy": version("numpy"),
        },
        "processor": processor or platform.machine(),
        "host": platform.node(),
        "slurm_job": os.environ.get("SLURM_JOB_ID"),  # sacct -j, seff: what the job used
        "argv": sys.argv,
    }


def offline_reason(error: Exception) -> str:
    """Why an online run could not start, in a line that says what to do about it."""
    import wandb

    if isinstance(error, wandb.errors.UsageError) and re.search("api[ _]key", str(error), re.I):
        # a job's node reads the key from ~/.netrc (`wandb login`) or its environment
        return "no API key here (`wandb login`, or WANDB_API_KEY where the jobs run)"
    return f"unreachable ({type(error).__name__})"


def _cannot_start(error: Exception) -> FromScratchError:
    """W&B's refusal to start a run, in one line (its own message runs over many)."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return FromScratchError(f"W&B cannot start the run: {type(error).__name__}: {first}")


class Tracker:
    def __init__(
        self,
        out: str | Path,
        config: dict,
        *,
        mode: str = "disabled",
        project: str = "fromscratch",
        entity: str = "",
        group: str = "",
        job_type: str = "",
        tags: list[str] | tuple[str, ...] = (),
        name: str = "",
        run_id: str | None = None,
        resume_step: int | None = None,
        resume_lines: int | None = None,
        resume_wall_s: float = 0.0,
        enabled: bool = True,
        outputs: tuple[str, ...] = (),
        x_axis: str = "",
    ):
        """outputs: the files the run writes into `out` at its end (model.pt), which a new
        run moves aside with an earlier run's metrics: left, they would pass for its own.
        x_axis: the logged value W&B draws every chart against ("": its step), as the
        figures do: a training run's tokens, an LR range test's LR."""
        self.out = Path(out)
        self.name = name or self.out.name  # W&B's list of runs shows it
        self.enabled = enabled  # False on every DDP rank but the first
        self.run_id = run_id or uuid.uuid4().hex[:12]
        # the wall time of the starts before this one, up to their last checkpoint
        self.started = time.time() - resume_wall_s
        self.metrics_path = self.out / "metrics.jsonl"
        self.lines = 0  # in metrics.jsonl: a checkpoint records it (see _truncate_after)
        self.logged = False  # a row to W&B by this start, which finish() writes out
        self.wandb = None
        if not enabled:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        if resume_step is None:  # a new run: what an earlier one left here is kept aside
            # (its W&B files too: out of the way of `wandb sync` (README), which would upload
            # that abandoned run beside this one)
            earlier_files = ["metrics.jsonl", "summary.json", "wandb", *outputs]
            for earlier in (self.out / name for name in earlier_files):
                if earlier.exists():
                    moved = set_aside(earlier)
                    print(f"{earlier.name} of an earlier run moved to {moved}", file=sys.stderr)
        else:
            last_logged = self._truncate_after(resume_step, resume_lines)
            if mode != "disabled":
                self._cut_offline_files(resume_step)
            if mode == "online" and last_logged is not None and last_logged > resume_step:
                # W&B's server drops a log of a step below its run's current one
                print(
                    f"W&B keeps any values it has of steps {resume_step + 1}..{last_logged}, "
                    f"logged before the run stopped; {self.metrics_path} has those of this run",
                    file=sys.stderr,
                )
        if mode != "disabled":
            self.wandb = self._start_wandb(
                mode, project, entity, group, job_type, list(tags), config
            )
            if x_axis:  # a row without it is drawn at its last value (step_sync)
                self._to_wandb(lambda run: run.define_metric(x_axis))
                self._to_wandb(
                    lambda run: run.define_metric("*", step_metric=x_axis, step_sync=True)
                )
            if resume_step is not None and self.wandb is not None and self.wandb.offline:
                self._send_what_wandb_lacks()

    def _cut_offline_files(self, step: int) -> None:
        """End the earlier starts' offline files at the checkpoint resumed from (and
        before a record a kill cut short), so that one `wandb sync` of the run's folders
        uploads each step once (this start logs the rest again). A folder left with no
        whole record, of a start killed before W&B wrote any, goes aside where the
        README's `find` does not look: this start sends its steps (_send_what_wandb_lacks)."""
        for folder in sorted((self.out / "wandb").glob(f"offline-run-*-{self.run_id}")):
            if not all(cut_offline_file(run_file, step) for run_file in folder.glob("*.wandb")):
                aside = self.out / "wandb.unreadable" / folder.name
                aside.parent.mkdir(exist_ok=True)
                os.replace(folder, aside)
                print(f"{folder}: no whole W&B record (a start killed early); moved to {aside}",
                      file=sys.stderr)  # fmt: skip

    def _send_what_wandb_lacks(self) -> None:
        """Log to W&B the kept metric lines past the last step that this run's earlier
        offline files hold (all of them, where W&B was off before): the same history, once,
        whichever way the earlier starts ended."""
        held = max(
            (
                step
                for run_file in (self.out / "wandb").glob(f"offline-run-*-{self.run_id}/*.wandb")
                for step in offline_history_steps(run_file)
            ),
            default=-1,
        )
        if not self.metrics_path.exists():  # no line kept (none logged before the checkpoint)
            return
        with open(self.metrics_path, encoding="utf-8") as f:
            for line in f:
                record = json.loads(line)
                step = record.pop("step")
                if step > held:
                    self._to_wandb(lambda run, record=record, step=step: run.log(record, step=step))
                    self.logged = True

    def _truncate_after(self, step: int, lines: int | None) -> int | None:
        """Keep the metric lines written before the checkpoint resumed from (the first
        `lines`, where the checkpoint counted them; else those up to its `step`), drop the
        rest: a run killed after its last checkpoint, even after its final evaluation was
        logged at that same step, logs each line once.  Returns the last step logged."""
        if not self.metrics_path.exists():
            return None
        written = self.metrics_path.read_text(encoding="utf-8").splitlines(keepends=True)
        steps = []  # of each line, up to one cut short by a kill (what follows is unreliable)
        for line in written:
            try:
                steps.append(json.loads(line).get("step", 0))
            except json.JSONDecodeError:
                break
        keep = [
            line for line, logged in zip(written[:lines], steps, strict=False) if logged <= step
        ]
        # a line that reads as a whole record lost no more than its newline to the kill:
        # without it, the next line would be joined to it
        keep = [line if line.endswith("\n") else line + "\n" for line in keep]
        with atomic_path(self.metrics_path) as tmp:
            tmp.write_text("".join(keep), encoding="utf-8")
        self.lines = len(keep)
        return max(steps, default=None)

    def _start_wandb(self, mode, project, entity, group, job_type, tags, config):
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        kwargs = dict(
            project=project,
            entity=entity or None,  # None: the user's default entity
            group=group or None,
            job_type=job_type or None,
            tags=tags,
            config=config,
            # absolute: the W&B service writing the files may run in another folder, one
            # this process inherited (WANDB_SERVICE) from a parent with a run of its own
            dir=str(self.out.absolute()),
            id=self.run_id,
            resume="allow",
            name=self.name,
        )
        try:
            return wandb.init(
                mode=mode, settings=wandb.Settings(init_timeout=INIT_TIMEOUT_S), **kwargs
            )
        except Exception as e:  # no server, no API key: carry on offline
            if mode != "online":
                raise _cannot_start(e) from e
            print(f"W&B: {offline_reason(e)}; logging offline: `wandb sync` later", file=sys.stderr)
            # the failed attempt still holds the run id in W&B's background service, which
            # would refuse the offline run under the same id (the one a resume needs)
            wandb.teardown()
            try:
                return wandb.init(mode="offline", **kwargs)
            except Exception as offline:  # not the connection, then: what W&B refuses
                raise _cannot_start(offline) from offline

    def checkpoint_state(self) -> dict:
        """What a checkpoint keeps of the tracking, for Tracker(resume_*) to go on from."""
        return {
            "wandb_run_id": self.run_id,
            "metric_lines": self.lines,
            "wall_time_s": time.time() - self.started,
        }

    def log(self, metrics: dict[str, Any], step: int) -> None:
        if not self.enabled:
            return
        record = {"step": step, **metrics}
        with (
            disk_errors_named(self.metrics_path),
            open(self.metrics_path, "a", encoding="utf-8") as f,
        ):
            f.write(json.dumps(record) + "\n")
        self.lines += 1
        self._to_wandb(lambda run: run.log(metrics, step=step))
        self.logged = True

    def log_table(self, name: str, rows: list[dict]) -> None:
        """`rows` (dicts of the same columns) as the W&B table `name`, at step 0: W&B's
        workspace joins the tables of one name across runs, each row beside its run's name
        (the samples of every variant). Not in metrics.jsonl: the stage's own file holds it."""
        import wandb

        table = wandb.Table(columns=list(rows[0]), data=[list(row.values()) for row in rows])
        self._to_wandb(lambda run: run.log({name: table}, step=0))
        self.logged = True

    def log_files(self, images: list[Path], tables: list[Path], files: list[Path] = ()) -> None:
        """Figures (PNG) and tables (CSV) into W&B, each under its file's name, and `files`
        as the run's files (a PDF, which W&B shows no preview of): a figure job's output,
        to look at beside the runs it was made from."""
        if self.wandb is None:
            return
        import pandas as pd
        import wandb

        media = {path.stem: wandb.Image(str(path)) for path in images}
        for path in map(Path, tables):
            table = pd.read_csv(path)
            if len(table) <= wandb.Table.MAX_ROWS:
                media[f"{path.stem} table"] = wandb.Table(dataframe=table)
            else:  # W&B would keep the first rows alone, and say nothing
                print(
                    f"{path.name}: {len(table):,} rows, more than a W&B table shows "
                    f"({wandb.Table.MAX_ROWS:,}); among the run's files as it is",
                    file=sys.stderr,
                )
                files = [*files, path]
        self._to_wandb(lambda run: run.log(media, step=0))
        for path in files:  # "now": the run ends with the job
            path = Path(path).absolute()
            self._to_wandb(
                lambda run, path=path: run.save(
                    str(path), base_path=str(path.parent), policy="now", glob=False
                )
            )

    def _to_wandb(self, send) -> None:
        """send(run) if W&B is on. Should W&B's service be gone (a job's scancel signals it
        too), stop sending and carry on: metrics.jsonl holds everything, and a crash here
        would cost the checkpoint the training loop is about to save."""
        if self.wandb is None:
            return
        try:
            send(self.wandb)
        except Exception as error:
            print(
                f"W&B stopped ({type(error).__name__}: {error}); metrics go on in "
                f"{self.metrics_path}",
                file=sys.stderr,
            )
            self.wandb = None
            import wandb

            with contextlib.suppress(Exception):  # forget the dead service, here and at exit
                wandb.teardown()

    def finish(self, summary: dict[str, Any], config: dict) -> dict:
        """Write summary.json (and the W&B summary); returns what was written."""
        if not self.enabled:
            return summary
        full = {
            **summary,
            "config": config,
            "wall_time_s": time.time() - self.started,
            "wandb_run_id": self.run_id,
            **environment(),
        }
        write_json(self.out / "summary.json", full)
        # with the wall time of every start: W&B's own runtime counts the last start alone
        # numbers, text and mappings (a model's config as built, the LR a measurement was
        # taken at): not the long lists a study's summary may hold, which its files keep
        scalars = {k: v for k, v in summary.items() if isinstance(v, int | float | str | dict)}
        scalars["wall_time_s"] = full["wall_time_s"]
        # the last step's row first: written out at finish, after the summary, its values
        # (the last window's tokens_per_s) would replace the whole run's (a run that
        # logged no row, a measurement's summary alone, gets no empty one; nor does a
        # resumed start with nothing left to log: its row would be an empty step 0)
        if self.logged:
            self._to_wandb(lambda run: run.log({}, commit=True))
        self._to_wandb(lambda run: run.summary.update(scalars))
        self._to_wandb(lambda run: run.finish())
        self.wandb = None
        return full

    def close(self) -> None:
        """End the W&B run without a summary, as failed (exit code 1): the run was stopped
        (it will resume) or failed."""
        self._to_wandb(lambda run: run.finish(exit_code=1))
        self.wandb = None


# Here, not with the training config that extends it: the figure jobs log to W&B too, and
# should not wait for torch to import.
@dataclasses.dataclass
class TrackingConfig(Config):
    """Where a run's metrics go besides its folder: W&B mode (online | offline |
    disabled), project, entity (a team; "": the user's default), and the run's group, job
    type, comma-separated tags and name (as W&B lists it; "": the run folder's name)."""

    wandb_mode: str = "disabled"
    wandb_project: str = "fromscratch"
    wandb_entity: str = ""
    group: str = ""
    job_type: str = "train"
    tags: str = ""
    run_name: str = ""

    JOINED_BY: ClassVar[dict[str, str]] = {"tags": ","}

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_choice("wandb_mode", WANDB_MODES)
        # what W&B refuses at its start, in every job: said here, before any job starts
        if not 0 < len(self.wandb_project) <= 128 or set(self.wandb_project) & set("/\\#?%:"):
            self._fail(
                "wandb_project",
                f"{self.wandb_project!r}: W&B takes 1 to 128 characters, none of / \\ # ? % :",
            )
        for tag in self.tags.split(","):
            if len(tag) > 64:
                self._fail("tags", f"{tag!r} is {len(tag)} characters; W&B takes 64 at most")

    def tracker(
        self,
        out,
        run_config: dict,
        saved: dict | None,
        outputs: tuple[str, ...],
        enabled=True,
        x_axis: str = "",
    ):
        """The run's Tracker (metrics.jsonl, summary.json, W&B); resuming from the checkpoint
        `saved`: its W&B run and its metric lines.  outputs: the files the run writes at its
        end, x_axis: what W&B draws its charts against (see Tracker)."""
        return Tracker(
            out,
            run_config,
            mode=self.wandb_mode,
            project=self.wandb_project,
            entity=self.wandb_entity,
            group=self.group,
            job_type=self.job_type,
            tags=[t for t in self.tags.split(",") if t],
            name=self.run_name,
            run_id=saved["wandb_run_id"] if saved else None,
            resume_step=saved["step"] if saved else None,
            resume_lines=saved.get("metric_lines") if saved else None,
            resume_wall_s=saved.get("wall_time_s", 0.0) if saved else 0.0,
            enabled=enabled,
            outputs=outputs,
            x_axis=x_axis,
        )

    @classmethod
    def after(cls, trained: dict, stage: str) -> TrackingConfig:
        """The tracking of `stage` (evaluate, sample) of a trained model, whose saved
        training config is `trained`: its W&B project and group, job type `stage`, and
        the run's name with /stage after it."""
        fields = {f.name: trained[f.name] for f in dataclasses.fields(cls) if f.name in trained}
        name = fields.get("run_name") or "run"
        return cls(**fields | {"job_type": stage, "run_name": f"{name}/{stage}"})

    def log_results(
        self,
        out,
        run_config: dict,
        rows: list[dict],
        summary: dict,
        x_axis: str = "",
        tables: dict[str, list[dict]] | None = None,
    ) -> None:
        """A stage's results that no training run holds (the LR range test's loss against
        the LR, the batch-size search's throughput against the batch size, a trained
        model's scores on other sets, its samples) as a W&B run of their own: `rows` its
        history (a step each, drawn against their `x_axis` value), `tables` W&B tables
        (name: rows), `summary` its summary, its metrics.jsonl, summary.json and W&B files
        in `out`; nothing where W&B is off."""
        if self.wandb_mode == "disabled":
            return
        tracker = self.tracker(out, run_config, None, (), x_axis=x_axis)
        for name, table in (tables or {}).items():
            tracker.log_table(name, table)
        for step, row in enumerate(rows):
            tracker.log(row, step)
        tracker.finish(summary, run_config)
