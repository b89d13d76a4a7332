"""Atomic file and folder writes: a reader never sees a half-written output.

Everything is written next to its final place under a temporary name, synced to the
disk, and then renamed over the target (a rename within one file system is atomic on
POSIX); the rename is synced too, so that a power cut cannot undo it or leave it pointing
at bytes that never reached the disk.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import platform
import re
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fromscratch import FromScratchError

TMP_TOKEN_BYTES = 8  # 64 random bits in a temporary name


def _create_beside(path: Path, create: Callable[[Path], Any]) -> Path:
    """A new entry `.NAME.RANDOM.tmp` beside `path`, made by `create` (and `path`'s missing
    parent folders); a failure is one line naming `path`.

    Not `tempfile`: its files are 0600 and its folders 0700 whatever the umask, but outputs
    live in folders shared with others; `os.open` and `os.mkdir` apply the umask (and any
    default ACL) as a plain `open()` does. With 64 random bits a clash is practically
    impossible, and the exclusive create makes one an error rather than a shared file.
    """
    tmp = path.parent / f".{path.name}.{secrets.token_hex(TMP_TOKEN_BYTES)}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        create(tmp)
    except OSError as error:
        raise FromScratchError(f"{path}: cannot be written: {_why(path, error)}") from None
    return tmp


def _temporaries(name: str) -> re.Pattern:
    """What _create_beside names for a `name` (a regular expression): .NAME.<hex>.tmp."""
    return re.compile(rf"\.{name}\.[0-9a-f]{{{2 * TMP_TOKEN_BYTES}}}\.tmp")


INTERRUPTED_WRITE = _temporaries(".+")


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    else:
        entry.unlink()


def remove_interrupted_writes(folder: str | os.PathLike) -> None:
    """Delete the temporary files and folders that writes into `folder` left when their
    process was killed (SIGKILL skips their clean-up): a checkpoint's can be gigabytes.
    Only for a folder no other process writes into meanwhile (one that sole_run holds)."""
    folder = Path(folder)
    for entry in folder.iterdir() if folder.is_dir() else ():
        if INTERRUPTED_WRITE.fullmatch(entry.name):
            _remove(entry)


@contextlib.contextmanager
def exclusive(guarded: Path, lock: Path, busy: str, remove: bool = False) -> Iterator[bool]:
    """Hold an advisory lock on the file `lock` (made if missing) for the block, for the
    path `guarded` that messages name; a second process that asks for it meanwhile fails
    at once with the message `busy`, its "{holder}" filled with the holder's pid, host,
    SLURM job (in one) and start.

    The kernel drops the lock when the process ends, however it ends (SIGKILL, a requeue),
    so no stale lock outlives it. Yields whether it holds the lock: not on a file system
    without locks (Lustre mounted without -o flock), where a line on stderr says so and the
    block runs all the same. remove: delete the file afterwards (a process that opened it
    just before finds, once it holds the lock, that it locked a deleted file, and opens it
    again).
    """
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise FromScratchError(f"{guarded}: cannot be written: {_why(lock, error)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            try:
                holder = lock.read_text(errors="replace").strip() or "holder unknown"
            except OSError:  # its holder deleted it meanwhile
                holder = "holder unknown"
            raise FromScratchError(busy.replace("{holder}", holder)) from None
        except OSError as error:
            print(f"{guarded}: not locked ({error.strerror}); going on", file=sys.stderr)
            held = False
            break
        if os.path.exists(lock) and os.stat(lock).st_ino == os.fstat(fd).st_ino:
            held = True
            os.ftruncate(fd, 0)
            when = time.strftime("%Y-%m-%d %H:%M:%S")
            job = os.environ.get("SLURM_JOB_ID")  # what scancel takes, from another node
            holder = f"pid {os.getpid()} on {platform.node()}{f', SLURM job {job}' if job else ''}"
            os.write(fd, f"{holder} since {when}\n".encode())
            break
        os.close(fd)  # its holder deleted it meanwhile
    try:
        yield held
    finally:
        if remove and held:
            lock.unlink()  # before the lock goes, so nobody locks the file being deleted
        os.close(fd)


def _why(path: Path, error: OSError) -> str:
    """Why nothing could be made at `path`, in words: a file where a folder must be (the
    system says only "Not a directory" or "File exists"), else the system's own reason."""
    file = file_above(path)
    return f"{file} is a file, not a folder" if file else error.strerror or str(error)


def _sync(path: Path) -> None:
    """Flush `path` from the system's cache to the disk: a file's bytes, or a folder's list
    of entries (the renames in it).

    A rename alone is atomic but not durable: after a crash of the machine the new name can
    point at a file whose bytes never reached the disk (empty or garbage), and the older
    checkpoint deleted just after it would be gone too. Syncing the file before its rename
    and the folder after it closes both holes; it costs a few milliseconds a write.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        if not path.is_dir():
            raise  # a file whose bytes may not be on the disk: the write has failed
        # Some systems cannot sync a folder (Windows cannot open one, some file systems
        # refuse it): the rename is then as durable as that system makes it.


def make_folder(path: str | os.PathLike) -> Path:
    """`mkdir -p path`; a file at `path` or above it (or any other refusal) is one line
    naming `path`, not an OSError."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        why = "a file is there" if path.is_file() else _why(path, error)
        raise FromScratchError(f"{path}: cannot be made a folder: {why}") from None
    return path


def _new_file(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


def file_above(path: str | os.PathLike) -> Path | None:
    """The nearest existing entry above `path`, when it is not a folder: a file where `path`
    needs one, so that nothing can be written there."""
    # "/" or "." at the latest, except for "/" and "." themselves, which have nothing above
    above = next((p for p in Path(path).parents if p.exists()), None)
    return above if above is not None and not above.is_dir() else None


def _check_no_file_above(path: Path, label: str) -> None:
    if file := file_above(path):
        raise FromScratchError(f"{label}: cannot be written: {file} is a file, not a folder")


def check_file_target(path: str | os.PathLike, label: str = "") -> None:
    """Fail in one line unless a file can be written at `path`: not where a folder is (a
    rename cannot replace one; "" and "." name this folder), nor below a file.  Callers run
    this before long work too, so that a wrong path fails at once, not at the last write.
    label: how the message names `path` ("--out PATH"; default: the path itself)."""
    path = Path(path)
    label = label or str(path)
    if path.is_dir():
        raise FromScratchError(
            f"{label}: cannot be written: it is a folder; give the path of a file to write"
        )
    _check_no_file_above(path, label)


DISK_FULL_OR_FAILING = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS}


@contextlib.contextmanager
def disk_errors_named(path: str | os.PathLike) -> Iterator[None]:
    """A full or failing disk while writing `path` as one line naming it: the disk's
    fault, not the program's, so no traceback."""
    try:
        yield
    except OSError as error:
        if error.errno not in DISK_FULL_OR_FAILING:
            raise
        raise FromScratchError(f"{path}: cannot be written: {error.strerror}") from error


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` if the block succeeds."""
    path = Path(path)
    check_file_target(path)  # else the rename at the end fails, after the work
    tmp = _create_beside(path, _new_file)
    try:
        with disk_errors_named(path):
            yield tmp
            _sync(tmp)  # its bytes on the disk before it takes the name
            os.replace(tmp, path)
            _sync(path.parent)  # and the rename itself
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # the file closes before the rename
        f.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def parse_json(text: str, source: str) -> Any:
    """JSON `text`, where a key written twice in one object is an error naming `source`
    (json.loads would keep the last value without a word)."""

    def without_repeats(pairs: list[tuple[str, object]]) -> dict:
        keys = [key for key, _ in pairs]
        if repeated := next((key for i, key in enumerate(keys) if key in keys[:i]), None):
            raise FromScratchError(f"{source}: the key {repeated!r} appears twice")
        return dict(pairs)

    return json.loads(text, object_pairs_hook=without_repeats)


def parse_yaml(text: str, source: str) -> Any:
    """YAML `text` (or JSON, as Snakemake reads a config file: JSON indented with tabs is
    not YAML); a syntax error is one line naming `source` and where it went wrong.

    A key written twice in one mapping is an error too (PyYAML would keep the last one
    silently, and a config would train on data other than the one its first line names).
    """
    import yaml

    with contextlib.suppress(json.JSONDecodeError):
        return parse_json(text, source)

    class UniqueKeys(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = []
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # <<: *defaults, keys merged in
                    continue
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        problem=f"the key {key!r} appears twice", problem_mark=key_node.start_mark
                    )
                seen.append(key)
            return super().construct_mapping(node, deep)

    try:
        return yaml.load(text, Loader=UniqueKeys)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "cannot be parsed"
        raise FromScratchError(f"{source}: not valid YAML{where}: {problem}") from None


def set_aside(path: str | os.PathLike) -> Path:
    """Rename `path` out of the way to PATH.stale-N, the first N free (never delete a run's
    state); the new name.  A link to nothing holds its name too (lexists, not exists)."""
    path = Path(path)
    n = 1
    while os.path.lexists(stale := path.with_name(f"{path.name}.stale-{n}")):
        n += 1
    path.rename(stale)
    return stale


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def check_replaceable(
    path: str | os.PathLike,
    marker: str | None = None,
    vouch: Callable[[Path], bool] | None = None,
) -> None:
    """Fail in one line unless `atomic_dir(path, marker, vouch)` may write `path`: a new
    path, an empty folder, or an earlier output of the same kind, a folder holding the file
    `marker` (and, where a name as common as tokenizer.json is not enough, one that
    `vouch(folder)` says is this kind's).

    Anything else at `path` is someone else's and is never replaced. Callers run this before
    hours of work too, so that a wrong path fails at once.
    """
    path = Path(path)
    if path.name in ("", ".."):  # ".", ".." and "/": no rename can replace them
        raise FromScratchError(
            f"{path}: names no new folder (this folder, one above it or /); give a new path"
        )
    if path.is_dir():
        marked = marker is not None and (path / marker).exists()
        if (marked and (vouch is None or vouch(path))) or not any(path.iterdir()):
            return
        holds = (
            f"its {marker} is another program's" if marked
            else f"no {marker}" if marker
            else "not empty"
        )  # fmt: skip
        raise FromScratchError(
            f"{path}: exists and is not an earlier output ({holds}); give a new path or remove it"
        )
    if path.exists() or path.is_symlink():
        raise FromScratchError(f"{path}: exists and is a file; give a new path or remove it")
    _check_no_file_above(path, str(path))


@contextlib.contextmanager
def atomic_dir(
    path: str | os.PathLike,
    marker: str | None = None,
    vouch: Callable[[Path], bool] | None = None,
) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; it replaces `path` if the block succeeds.

    What is already at `path` must pass `check_replaceable(path, marker, vouch)`. On any error the
    temporary folder is removed, so a failed run leaves no output behind (and an older
    complete output, if there was one, untouched).

    An older output is moved aside, and deleted only once the new one is in its place: a
    process killed in the instant between those two renames leaves nothing at `path`, but
    loses nothing either: the older output is then at `.NAME.RANDOM.tmp/NAME` beside `path`
    and the new one, complete, at another `.NAME.RANDOM.tmp` (no portable rename swaps two
    folders in one step).

    One process at a time writes `path` (a lock on `.NAME.lock` beside it, deleted after);
    a second fails at once, in one line. The writer that takes the lock first deletes what
    killed writers of `path` left (SIGKILL skips the clean-up: a half-tokenised data set
    stayed for ever), putting an older output left aside back in its place.
    """
    path = Path(path)
    check_replaceable(path, marker, vouch)
    lock = make_folder(path.parent) / f".{path.name}.lock"
    busy = f"{path}: another process is writing it ({{holder}}); wait for it to end"
    with exclusive(path, lock, busy, remove=True) as held:
        if held:  # no other writer of `path` is running: what it left is a killed one's
            _recover(path)
        with _replace_with_new(path) as tmp:
            yield tmp


def _recover(path: Path) -> None:
    """Delete what writers of `path` killed outright (SIGKILL skips their clean-up) left
    beside it; one killed between moving the older output aside and renaming the new one in
    left the older one inside its temporary folder, which goes back to `path` first."""
    temporary = _temporaries(re.escape(path.name))
    for entry in path.parent.iterdir():
        if temporary.fullmatch(entry.name):
            older = entry / path.name
            if not path.exists() and older.is_dir() and not older.is_symlink():
                os.replace(older, path)
                _sync(path.parent)
            _remove(entry)


@contextlib.contextmanager
def _replace_with_new(path: Path) -> Iterator[Path]:
    """atomic_dir's writing, once it holds `path`."""
    tmp = _create_beside(path, os.mkdir)
    try:
        yield tmp
        # every file and folder on the disk before the whole takes the name (as atomic_path)
        for folder, _, files in os.walk(tmp, topdown=False):
            for name in files:
                if not os.path.islink(os.path.join(folder, name)):  # a link holds no bytes
                    _sync(Path(folder, name))
            _sync(Path(folder))
        if path.exists():  # a rename replaces no folder that holds files: move it aside
            old = _create_beside(path, os.mkdir)
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            _sync(path.parent)  # the new output durable before the old one is deleted
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
            _sync(path.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
