"""Atomic writes: what they may replace, what they refuse, and the permissions they give."""

import errno
import json
import math
import os
import re
import shutil
import stat
import subprocess
import sys

import pytest

from fromscratch import FromScratchError
from fromscratch.io import (
    atomic_dir,
    atomic_path,
    check_replaceable,
    parse_yaml,
    set_aside,
    write_json,
    write_text,
)


def entries(folder):
    return sorted(p.name for p in folder.iterdir())


def write_output(path, marker="done.txt", text="new"):
    with atomic_dir(path, marker) as tmp:
        (tmp / marker).write_text(text)


@pytest.fixture
def umask():
    """Set a umask for one test; the old one comes back afterwards."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_dir_replaces_an_earlier_output_or_an_empty_folder(tmp_path):
    out = tmp_path / "out"
    write_output(out, text="old")
    write_output(out)
    assert (out / "done.txt").read_text() == "new"
    (tmp_path / "empty").mkdir()  # as Snakemake makes an output's folder before a job runs
    write_output(tmp_path / "empty")
    assert entries(tmp_path) == ["empty", "out"]  # no temporary folder left over


def tree(folder):
    """Every entry under `folder`, hidden ones too: a file's text, a folder's None."""
    return {
        str(p.relative_to(folder)): p.read_text() if p.is_file() else None
        for p in folder.rglob("*")
    }


def put_file(tmp, text):
    tmp.write_text(text)


def put_marker(tmp, text):
    (tmp / "done.txt").write_text(text)


@pytest.mark.parametrize(
    ("atomic", "put"),
    [(atomic_path, put_file), (lambda path: atomic_dir(path, "done.txt"), put_marker)],
    ids=["atomic_path", "atomic_dir"],
)
def test_a_failed_write_leaves_the_earlier_output_as_it_was(tmp_path, atomic, put):
    with atomic(tmp_path / "out") as tmp:
        put(tmp, "old")
    before = tree(tmp_path)
    with pytest.raises(RuntimeError, match="killed halfway"), atomic(tmp_path / "out") as tmp:
        put(tmp, "half")
        raise RuntimeError("killed halfway")
    assert tree(tmp_path) == before  # the old output whole, and no temporary entry beside it


WRITE_AND_WAIT = """
import sys, time
from fromscratch.io import atomic_dir
with atomic_dir(sys.argv[1], "done.txt") as tmp:
    (tmp / "half.bin").write_bytes(bytes(1000))
    print("writing", flush=True)
    time.sleep(60)
"""


def test_a_writer_killed_outright_leaves_nothing_after_the_next_write(tmp_path):
    """SIGKILL skips every clean-up: the killed writer's temporary folder stays until the
    next writer of the same output takes it over; another output's is left alone."""
    out = tmp_path / "out"
    write_output(out, text="old")
    others = [tmp_path / ".other.0123456789abcdef.tmp", tmp_path / ".out.tmp"]
    for other in others:
        other.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", WRITE_AND_WAIT, str(out)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert writer.stdout.readline() == "writing\n"
    writer.kill()
    writer.wait()
    left = [p.name for p in tmp_path.glob(".out.*")]
    assert len(left) == 3 and ".out.lock" in left  # its half-written folder and its lock
    write_output(out)
    assert entries(tmp_path) == sorted(["out", *(other.name for other in others)])
    assert (out / "done.txt").read_text() == "new"


def test_an_older_output_set_aside_by_a_killed_writer_goes_back(tmp_path):
    """Killed between its two renames, a writer left the older output inside one temporary
    folder and its new one, complete, in another: the next writer puts the older one back,
    so that it is there still if that writer fails too."""
    out = tmp_path / "out"
    write_output(out, text="old")
    aside = tmp_path / ".out.0123456789abcdef.tmp"
    aside.mkdir()
    os.replace(out, aside / "out")
    write_output(tmp_path / ".out.fedcba9876543210.tmp", text="newer")  # as it left it
    with pytest.raises(RuntimeError, match="failed"), atomic_dir(out, "done.txt"):
        raise RuntimeError("failed")
    assert entries(tmp_path) == ["out"] and (out / "done.txt").read_text() == "old"


def test_an_older_output_left_by_a_killed_writer_yields_to_a_newer_one(tmp_path):
    """The older output a killed writer set aside is stale once the output was written
    again since: it is deleted with the leftovers, not put back over the newer one."""
    out = tmp_path / "out"
    write_output(out, text="remade")
    aside = tmp_path / ".out.0123456789abcdef.tmp"
    aside.mkdir()
    write_output(aside / "out", text="old")  # as the killed writer left it
    write_output(out)
    assert entries(tmp_path) == ["out"] and (out / "done.txt").read_text() == "new"


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_set_aside_keeps_every_earlier_run(tmp_path, kind):
    path = tmp_path / "model.pt"
    for run in ("run 1", "run 2"):
        if kind == "file":
            path.write_text(run)
        else:
            path.mkdir()
            (path / "run.txt").write_text(run)
        set_aside(path)
    kept = {
        p.name: (p if kind == "file" else p / "run.txt").read_text() for p in tmp_path.iterdir()
    }
    assert kept == {"model.pt.stale-1": "run 1", "model.pt.stale-2": "run 2"}


def test_set_aside_takes_no_name_a_link_holds(tmp_path):
    """A link whose target is gone still holds its name: renaming over it would lose it."""
    path = tmp_path / "model.pt"
    path.write_text("run 2")
    (tmp_path / "model.pt.stale-1").symlink_to(tmp_path / "gone")
    assert set_aside(path) == tmp_path / "model.pt.stale-2"
    assert (tmp_path / "model.pt.stale-1").is_symlink()
    assert (tmp_path / "model.pt.stale-2").read_text() == "run 2"


def test_one_writer_of_an_output_at_a_time(tmp_path):
    """A second writer of the same output fails at once in one line naming the first; the
    first's write goes on, and an output beside it can be written meanwhile."""
    out = tmp_path / "out"
    with atomic_dir(out, "done.txt") as tmp:
        (tmp / "done.txt").write_text("first")
        with pytest.raises(FromScratchError) as error:
            write_output(out, text="second")
        assert re.fullmatch(
            rf"{out}: another process is writing it \(pid {os.getpid()} on .+ since .+\); "
            "wait for it to end",
            str(error.value),
        )
        write_output(tmp_path / "beside")
    assert (out / "done.txt").read_text() == "first"
    assert entries(tmp_path) == ["beside", "out"]  # the lock file goes with the write


def test_atomic_dir_keeps_a_folder_that_is_no_earlier_output(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "notes.txt").write_text("mine")
    with pytest.raises(FromScratchError, match=r"victim: exists and is not an earlier output"):
        write_output(victim)
    with pytest.raises(FromScratchError, match=r"\(not empty\)"):
        check_replaceable(victim)  # no marker: only a new path or an empty folder
    assert entries(victim) == ["notes.txt"] and entries(tmp_path) == ["victim"]


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("a-file", "a-file: exists and is a file"),
        (".", "names no new folder"),
        ("..", "names no new folder"),
        ("a-file/sub", "a-file is a file, not a folder"),
        ("a-file/sub/deeper", "a-file is a file, not a folder"),
    ],
)
def test_atomic_dir_refuses_what_it_cannot_replace(tmp_path, monkeypatch, where, message):
    work = tmp_path / "work"
    work.mkdir()
    (work / "a-file").write_text("mine")
    (work / "done.txt").write_text("a marker in the current folder: still not replaceable")
    monkeypatch.chdir(work)
    with pytest.raises(FromScratchError, match=message):
        write_output(where)
    assert entries(tmp_path) == ["work"] and entries(work) == ["a-file", "done.txt"]
    assert (work / "a-file").read_text() == "mine"


def test_check_replaceable_says_the_same_before_any_work(tmp_path):
    (tmp_path / "a-file").write_text("mine")
    with pytest.raises(FromScratchError, match="a-file is a file, not a folder"):
        check_replaceable(tmp_path / "a-file" / "sub", "done.txt")
    check_replaceable(tmp_path / "new" / "deeper", "done.txt")
    assert entries(tmp_path) == ["a-file"]  # a check creates nothing


def test_atomic_path_under_a_file_is_one_line_naming_the_path(tmp_path):
    (tmp_path / "a-file").write_text("mine")
    with pytest.raises(FromScratchError, match=r"a-file/x\.json: cannot be written: .*a-file is"):
        write_json(tmp_path / "a-file" / "x.json", {})
    assert entries(tmp_path) == ["a-file"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_an_unwritable_place_is_one_line_naming_the_path(tmp_path):
    # /proc takes no new entries, not even from root, which passes every permission check
    with pytest.raises(FromScratchError, match=r"^/proc/foo: cannot be written: "):
        write_output("/proc/foo")
    with pytest.raises(FromScratchError, match=r"^/proc/foo\.json: cannot be written: "):
        write_json("/proc/foo.json", {})


@pytest.mark.parametrize(
    ("mask", "file_mode", "folder_mode"),
    [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)],
    ids=["umask-022", "umask-027"],
)
def test_atomic_writes_get_the_permissions_of_the_umask(
    tmp_path, umask, mask, file_mode, folder_mode
):
    umask(mask)
    write_json(tmp_path / "meta.json", {})
    with atomic_path(tmp_path / "raw.bin") as tmp:
        tmp.write_bytes(b"\0")
    with atomic_dir(tmp_path / "out") as tmp:
        write_json(tmp / "meta.json", {})
    assert mode(tmp_path / "meta.json") == mode(tmp_path / "raw.bin") == file_mode
    assert mode(tmp_path / "out") == folder_mode
    assert mode(tmp_path / "out" / "meta.json") == file_mode


def test_a_file_written_where_a_folder_is_is_one_line_naming_the_path(tmp_path, monkeypatch):
    """A rename cannot replace a folder: the write failed at its end with an IsADirectoryError
    ("" and "." with "Device or resource busy"), and now fails before it starts."""
    (tmp_path / "a-folder").mkdir()
    with pytest.raises(FromScratchError, match=r"a-folder: cannot be written: it is a folder"):
        write_json(tmp_path / "a-folder", {})
    monkeypatch.chdir(tmp_path)
    for here in ("", "."):
        with pytest.raises(FromScratchError, match=r"^\.: cannot be written: it is a folder"):
            write_json(here, {})
    assert entries(tmp_path) == ["a-folder"] and entries(tmp_path / "a-folder") == []


def test_make_folder_where_a_file_is_is_one_line_naming_the_path(tmp_path):
    from fromscratch.io import make_folder

    (tmp_path / "a-file").write_text("mine")
    with pytest.raises(FromScratchError, match=r"a-file: cannot be made a folder: a file is there"):
        make_folder(tmp_path / "a-file")
    with pytest.raises(FromScratchError, match=r"x: cannot be made a folder: .*a-file is a file"):
        make_folder(tmp_path / "a-file" / "x")
    assert make_folder(tmp_path / "new" / "deeper").is_dir()
    assert entries(tmp_path) == ["a-file", "new"]


def test_there_is_no_file_above_this_folder_or_the_root():
    from fromscratch.io import file_above

    # "." and "/" have no parents: this was a StopIteration (`train --out .`)
    assert file_above(".") is None and file_above("") is None and file_above("/") is None


@pytest.fixture
def disk_log(monkeypatch):
    """The fsyncs and renames made, in order, through the real calls: ("fsync", inode) and
    ("replace", inode); an inode names a file or folder whatever it is called at the time."""
    log = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        log.append(("fsync", os.fstat(fd).st_ino))
        real_fsync(fd)

    def replace(src, dst):
        log.append(("replace", os.lstat(src).st_ino))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return log


def inode(path):
    return path.stat().st_ino


def test_atomic_path_syncs_the_file_before_its_rename_and_the_folder_after(tmp_path, disk_log):
    """A power cut must not leave the new name on a file whose bytes never reached the disk
    (as torch.save, the block itself syncs nothing)."""
    with atomic_path(tmp_path / "ckpt.pt") as tmp:
        tmp.write_bytes(b"weights")
    file, folder = inode(tmp_path / "ckpt.pt"), inode(tmp_path)
    assert disk_log == [("fsync", file), ("replace", file), ("fsync", folder)]


def test_atomic_dir_syncs_its_files_before_the_rename_and_the_folder_after(tmp_path, disk_log):
    write_output(tmp_path / "out", text="old")
    disk_log.clear()
    with atomic_dir(tmp_path / "out", "done.txt") as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "part.bin").write_bytes(b"data")
        (tmp / "done.txt").write_text("new")
        (tmp / "link").symlink_to("nowhere")  # a dangling link: skipped, not an error
    out = tmp_path / "out"
    inside = [out / "sub" / "part.bin", out / "sub", out / "done.txt", out]
    # the files and folders first, then the old output moved aside and the new one in its
    # place, then the folder that holds it
    assert sorted(disk_log[:4]) == sorted(("fsync", inode(p)) for p in inside)
    assert [event for event, _ in disk_log[4:]] == ["replace", "replace", "fsync"]
    assert disk_log[5:] == [("replace", inode(out)), ("fsync", inode(tmp_path))]


def test_a_folder_that_cannot_be_synced_is_skipped(tmp_path, monkeypatch):
    """Windows cannot open a folder, some file systems refuse to sync one: the write still
    succeeds; a file that cannot be synced is an error."""
    real_fsync = os.fsync

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(22, "Invalid argument")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_json(tmp_path / "meta.json", {"a": 1})
    write_output(tmp_path / "out")
    assert (tmp_path / "out" / "done.txt").read_text() == "new"

    def failing_disk(fd):
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "fsync", failing_disk)
    with pytest.raises(FromScratchError, match=r"meta\.json: cannot be written: I/O error"):
        write_json(tmp_path / "meta.json", {"a": 2})
    assert (tmp_path / "meta.json").read_text() == '{\n  "a": 1\n}\n'  # the old one kept
    assert entries(tmp_path) == ["meta.json", "out"]


def test_a_config_reads_as_snakemake_reads_it():
    """YAML's merge keys and JSON (indented with tabs, which YAML forbids) read as they do
    in Snakemake; a key written twice is refused in either."""
    merged = "small: &small {seeds: [0, 1], steps: 5}\nfull: {<<: *small, steps: 9}\n"
    assert parse_yaml(merged, "c.yaml")["full"] == {"seeds": [0, 1], "steps": 9}
    assert parse_yaml('{\n\t"preset": "demo",\n\t"cores": 2\n}\n', "c.json") == {
        "preset": "demo",
        "cores": 2,
    }
    for twice in ("a: 1\na: 2\n", '{"a": 1, "a": 2}'):
        with pytest.raises(FromScratchError, match=r"c\.yaml: .*the key 'a' appears twice"):
            parse_yaml(twice, "c.yaml")


def test_a_full_disk_is_one_line_and_keeps_the_earlier_file(tmp_path, monkeypatch):
    out = tmp_path / "summary.json"
    out.write_text("earlier")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(FromScratchError) as refused:
        write_json(out, {"loss": 1.0})
    assert str(refused.value) == f"{out}: cannot be written: No space left on device"
    assert out.read_text() == "earlier" and [p.name for p in tmp_path.iterdir()] == [out.name]


@pytest.mark.parametrize(
    ("atomic", "put"),
    [(atomic_path, put_file), (lambda path: atomic_dir(path, "done.txt"), put_marker)],
    ids=["atomic_path", "atomic_dir"],
)
def test_a_write_stopped_by_ctrl_c_leaves_no_temporary_entry(tmp_path, atomic, put):
    """KeyboardInterrupt is no Exception: the clean-up must run for it too, or each
    Ctrl-C leaves a hidden temporary beside the output."""
    with atomic(tmp_path / "out") as tmp:
        put(tmp, "old")
    before = tree(tmp_path)
    with pytest.raises(KeyboardInterrupt), atomic(tmp_path / "out") as tmp:
        put(tmp, "half")
        raise KeyboardInterrupt
    assert tree(tmp_path) == before


def test_an_older_output_is_deleted_only_once_the_new_ones_rename_is_synced(
    tmp_path, disk_log, monkeypatch
):
    """A power cut between the deletion and the folder's sync could leave neither output."""
    real_rmtree = shutil.rmtree

    def rmtree(path, *args, **kwargs):
        disk_log.append(("rmtree", os.lstat(path).st_ino))
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", rmtree)
    write_output(tmp_path / "out", text="old")
    old = inode(tmp_path / "out")
    disk_log.clear()
    write_output(tmp_path / "out")
    events = [event for event, _ in disk_log]
    assert events[-4:] == ["replace", "replace", "fsync", "rmtree"]
    assert disk_log[-2] == ("fsync", inode(tmp_path))
    assert disk_log[-4] == ("replace", old)  # the older output moved aside, then deleted
    assert (tmp_path / "out" / "done.txt").read_text() == "new"


def test_json_keeps_the_key_order_and_writes_non_finite_numbers(tmp_path):
    """A diverged run's summary (a NaN loss) is still written, as Python's json reads it
    back, and its keys stay in the order the run gave them."""
    write_json(
        tmp_path / "summary.json", {"zeta": float("nan"), "alpha": float("inf"), "mid": -1e400}
    )
    text = (tmp_path / "summary.json").read_text()
    assert text == '{\n  "zeta": NaN,\n  "alpha": Infinity,\n  "mid": -Infinity\n}\n'
    back = json.loads(text)
    assert list(back) == ["zeta", "alpha", "mid"] and math.isnan(back["zeta"])


def test_a_dangling_link_at_an_output_path_is_not_replaced(tmp_path):
    """A link is someone else's entry even when what it names is gone."""
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "gone")
    with pytest.raises(FromScratchError, match=r"out: exists and is a file"):
        write_output(link)
    assert link.is_symlink() and os.readlink(link) == str(tmp_path / "gone")
    assert entries(tmp_path) == ["out"]


def test_a_folder_with_the_marker_is_replaced_only_when_vouched_for(tmp_path):
    """A marker as common as tokenizer.json is not enough where `vouch` says otherwise."""
    out = tmp_path / "out"
    write_output(out, text="theirs")
    with pytest.raises(FromScratchError, match=r"not an earlier output \(its done\.txt is another"):
        check_replaceable(out, "done.txt", vouch=lambda folder: False)
    with (
        pytest.raises(FromScratchError, match="another program's"),
        atomic_dir(out, "done.txt", vouch=lambda folder: False),
    ):
        pass
    check_replaceable(out, "done.txt", vouch=lambda folder: folder == out)
    assert (out / "done.txt").read_text() == "theirs"


def test_the_leftovers_of_an_output_with_a_dot_in_its_name_are_its_own(tmp_path):
    """The output's name is matched as text: `a.b` does not take `axb`'s temporary folder
    (a write of that other output, running meanwhile) for one of its own."""
    others = tmp_path / ".axb.0123456789abcdef.tmp"
    others.mkdir()
    own = tmp_path / ".a.b.fedcba9876543210.tmp"
    own.mkdir()
    write_output(tmp_path / "a.b")
    assert entries(tmp_path) == sorted([others.name, "a.b"])


@pytest.mark.parametrize("job", ["", "4242"])
def test_a_lock_file_says_only_its_current_holder(tmp_path, monkeypatch, job):
    """A lock file kept between holders (remove=False) holds an earlier holder's line:
    the new holder's replaces it whole, however long the earlier one was; in a SLURM job,
    with the job's id (what scancel takes, from any node)."""
    from fromscratch.io import exclusive

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    if job:
        monkeypatch.setenv("SLURM_JOB_ID", job)
    lock = tmp_path / ".run.lock"
    lock.write_text(
        "pid 1 on an-earlier-host" + "-and-a-long-name" * 20 + " since 1999-12-31 23:59:59\n"
    )
    with exclusive(tmp_path / "run", lock, "busy: {holder}") as held:
        assert held
        with (
            pytest.raises(FromScratchError) as busy,
            exclusive(tmp_path / "run", lock, "busy: {holder}"),
        ):
            pass
    in_job = f", SLURM job {job}" if job else ""
    holder = rf"pid {os.getpid()} on [^\s,]+{in_job} since [\d-]+ [\d:]+"
    assert re.fullmatch(f"busy: {holder}", str(busy.value))
    assert lock.exists()  # kept: remove=False


@pytest.mark.parametrize(
    "code",
    [errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS],
    ids=["ENOSPC", "EDQUOT", "EFBIG", "EIO", "EROFS"],
)
def test_a_full_or_failing_disk_of_any_kind_is_one_line(tmp_path, monkeypatch, code):
    """A full quota (a cluster's usual full disk) is the disk's fault as much as ENOSPC."""

    def failing(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(FromScratchError) as refused:
        write_json(tmp_path / "summary.json", {})
    assert (
        str(refused.value) == f"{tmp_path / 'summary.json'}: cannot be written: {os.strerror(code)}"
    )


def test_an_empty_file_that_cannot_be_synced_is_an_error_too(tmp_path, monkeypatch):
    """Only a folder's sync may fail quietly: an empty file's name must be durable too."""

    def failing_disk(fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", failing_disk)
    with pytest.raises(FromScratchError, match="cannot be written: Input/output error"):
        write_text(tmp_path / "empty.txt", "")
    assert entries(tmp_path) == []
