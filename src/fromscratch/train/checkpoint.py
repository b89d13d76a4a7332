"""Checkpoints that lose nothing, written atomically, and found again on resume.

A checkpoint holds the model, the optimizer, the GradScaler, every RNG state (Python,
NumPy, torch CPU, each CUDA device and MPS), the step (which is also the data sampler's
position and, with the elapsed time, all the LR schedule needs), the tokens seen, the
elapsed training time (a time budget survives requeues), the W&B run id, the meta.json
of the data it trains on (see resume_from), and the CPU threads it ran on.
"""

from __future__ import annotations

import contextlib
import random
import re
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from fromscratch import first_line
from fromscratch.io import (
    atomic_path,
    exclusive,
    make_folder,
    remove_interrupted_writes,
    set_aside,
)

NAME = re.compile(r"step-(\d+)\.pt$")

# Settings of how a run is watched, not of what it trains: a run resumes across a change
# of them (say, W&B switched on for the rerun of a job that was killed).
WATCHING = {
    "wandb_mode",
    "wandb_project",
    "wandb_entity",
    "group",
    "job_type",
    "tags",
    "run_name",
    "log_every",
    "checkpoint_every",
    "keep_checkpoints",
    # what is evaluated, and how: a rerun that fixes an evaluation setting (which can fail
    # only at the final evaluation, after every step) must not train again
    "eval_every",
    "eval_splits",
    "eval_max_tokens",
    "eval_stride",
}


def rng_state() -> dict:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "mps": torch.mps.get_rng_state() if torch.backends.mps.is_available() else None,
    }


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        # one state per GPU the saving process saw: a resume that sees fewer GPUs (another
        # CUDA_VISIBLE_DEVICES) restores those it has, rather than failing on the others
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])
    if state.get("mps") is not None and torch.backends.mps.is_available():  # not saved before
        torch.mps.set_rng_state(state["mps"])


def save(folder: Path, state: dict, keep: int = 2) -> Path:
    """Write `state` as folder/step-NNNNNNNN.pt atomically; keep the newest `keep`.

    Checkpoints of later steps are damaged ones the resume skipped (load_latest), whose
    steps this run has taken again: counted as the newest, they would crowd out the one
    just written."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{state['step']:08d}.pt"
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    found = list_checkpoints(folder)
    kept = [p for p in found if step_of(p) <= state["step"]][-keep:]
    for old in set(found) - set(kept):
        old.unlink(missing_ok=True)
    return path


def step_of(path: Path) -> int:
    return int(NAME.match(path.name)[1])


def list_checkpoints(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if NAME.match(p.name)]
    return sorted(found, key=step_of)


def damage(path: Path) -> str | None:
    """What is wrong with the checkpoint file at `path`, or None if it is whole. A flipped
    bit torch.load would take, as it never reads the checksum of each tensor's bytes that
    the file holds."""
    try:
        with zipfile.ZipFile(path) as archive:
            failed = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError):
        return "cut short, or not a checkpoint"
    return None if failed is None else f"{failed} fails its checksum"


def load_latest(folder: Path) -> tuple[dict | None, list[str]]:
    """The newest checkpoint that is whole and loads, and, for each newer one skipped as
    damaged (never trusted), its name and what is wrong with it."""
    skipped = []
    for path in reversed(list_checkpoints(folder)):
        wrong = damage(path)
        if wrong is None:
            try:
                state = torch.load(path, map_location="cpu", weights_only=False)
            except Exception as e:  # any unreadable file is not a checkpoint
                wrong = first_line(e)
        if wrong is not None:
            skipped.append(f"{path.name}: {wrong}")
            continue
        state["path"] = str(path)
        return state, skipped
    return None, skipped


FINISHED = "finished"  # in the checkpoint folder of a run that went to its end


@contextlib.contextmanager
def sole_run(out: str | Path, owner: bool = True) -> Iterator[None]:
    """Hold the run folder `out` for this run: a second run started in it meanwhile fails
    at once, instead of mixing its checkpoints and metrics with this one's.

    A lock on out/.lock (io.exclusive), which no killed run leaves behind. owner: whether
    this process holds it (one of several processes of a distributed run does).
    """
    if not owner:
        yield
        return
    out = Path(out)
    created = not out.exists()
    make_folder(out)  # a file at `out` is one line, not a FileExistsError
    lock = out / ".lock"
    busy = (
        f"{out}: another run is training in this folder ({{holder}}); wait for it to end, or "
        "give this one another output folder. One left running by a Snakemake killed outright "
        "may have older settings than this one: stop it (kill, scancel), then run this again"
    )
    with exclusive(out, lock, busy) as held:  # a lock file in a used folder stays there
        try:
            if held:
                for folder in (out, out / "checkpoints"):  # a killed run's half-written files
                    remove_interrupted_writes(folder)
            yield
        finally:
            if created and [p.name for p in out.iterdir()] == [lock.name]:
                # a run that failed before it wrote anything (a config error) leaves no folder
                lock.unlink()
                out.rmdir()


def resume_from(
    folder: Path, config: dict, resume: bool, owner: bool = True, data_meta: dict | None = None
) -> dict | None:
    """The newest checkpoint in `folder` of an unfinished run of `config` (its WATCHING
    settings aside) on the data of `data_meta` when `resume` is asked for, else None: the
    run starts afresh.

    data_meta: the meta.json of the prepared data folder the run reads: what it was made
    from (the sources' checksums), how (tokenizer, seed) and its sizes. The data's path in
    `config` would not tell a folder prepared again with other settings from the one the
    run began on. (None: not checked; nor is a checkpoint saved without one.)

    A run that starts afresh moves the checkpoints of another run (an earlier one, one of
    another config or other data, or one that finished: a rerun the pipeline forces must
    train again) aside first: mixed with its own, they would outlive its checkpoints in the
    pruning and be what a later resume picks.  owner: whether this process moves them and
    says so (one of several processes of a distributed run does).
    """
    finished = (folder / FINISHED).exists()
    saved, damaged = load_latest(folder) if resume and not finished else (None, [])
    changed = changed_settings(saved["config"], config) if saved is not None else []
    other_data = differences(saved.get("data_meta"), data_meta) if saved is not None else []
    if owner and damaged and saved is not None:
        print(f"skipped damaged checkpoints ({'; '.join(damaged)})", file=sys.stderr)
    if saved is not None and not changed and not other_data:
        if owner:
            print(f"resuming from step {saved['step']} ({saved['path']})", file=sys.stderr)
        return saved
    if owner and (finished or list_checkpoints(folder)):
        stale = set_aside(folder)
        if finished:
            whose = "checkpoints of a finished run"
        elif saved is None and damaged:
            whose = f"checkpoints, all damaged ({'; '.join(damaged)}),"
        elif saved is None:
            whose = "checkpoints of an earlier run"
        elif changed:
            whose = f"checkpoints of a different config ({', '.join(changed)} changed)"
        else:
            whose = f"checkpoints of a run on other data (meta.json's {', '.join(other_data)} "
            whose += "changed since)"
        print(f"{whose} moved to {stale}; starting afresh", file=sys.stderr)
    return None


def differences(before: dict | None, now: dict | None) -> list[str]:
    """The keys whose values differ between two dicts; none where either is missing."""
    if before is None or now is None:
        return []
    return sorted(key for key in before.keys() | now.keys() if before.get(key) != now.get(key))


def what_trains(config: dict) -> dict:
    """`config` without the WATCHING settings, at any depth (a study nests its training's)."""
    return {
        key: what_trains(value) if isinstance(value, dict) else value
        for key, value in config.items()
        if key not in WATCHING
    }


def changed_settings(before: dict, now: dict) -> list[str]:
    """The settings, as dotted paths (model.dropout), in which two run configs differ, the
    WATCHING ones aside."""
    before, now = what_trains(before), what_trains(now)
    changed = []
    for key in sorted(before.keys() | now.keys()):
        old, new = before.get(key), now.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changed += [f"{key}.{inner}" for inner in changed_settings(old, new)]
        elif old != new:
            changed.append(key)
    return changed


def mark_finished(folder: Path) -> None:
    """Say that the run whose checkpoints these are went to its end (see resume_from)."""
    if folder.is_dir():
        (folder / FINISHED).write_text("this run went to its end; a rerun starts afresh\n")
