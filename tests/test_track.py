"""Run tracking: metrics.jsonl, summary.json and W&B (its real client, never a server)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import wandb
from PIL import Image

from fromscratch import FromScratchError, track
from fromscratch.track import Tracker

from .conftest import chart_x_axis, children, tiny_gpt, wandb_records


def test_an_online_run_that_cannot_reach_wandb_goes_on_offline(tmp_path, monkeypatch):
    """A logged-in user on a compute node without internet: the online attempt fails, and
    the run carries on offline under the same id (the one `wandb sync` and a resume use)."""
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(track, "INIT_TIMEOUT_S", 5)
    tracker = Tracker(tmp_path, {"lr": 1e-3}, mode="online", run_id="nonet0000001")
    tracker.log({"loss": 2.5}, step=1)
    summary = tracker.finish({"loss": 2.5}, {"lr": 1e-3})

    assert summary["wandb_run_id"] == "nonet0000001"
    assert [json.loads(line) for line in (tmp_path / "metrics.jsonl").open()] == [
        {"step": 1, "loss": 2.5}
    ]
    offline = list((tmp_path / "wandb").glob("offline-run-*-nonet0000001"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb"))


def test_an_online_run_without_an_api_key_says_how_to_give_one(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc from `wandb login`
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    wandb.teardown()  # wandb's settings of this process keep an earlier test's key
    tracker = Tracker(tmp_path / "run", {}, mode="online")
    tracker.finish({}, {})
    assert capsys.readouterr().err == (
        "W&B: no API key here (`wandb login`, or WANDB_API_KEY where the jobs run); "
        "logging offline: `wandb sync` later\n"
    )
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))


def test_a_full_disk_under_the_metrics_is_one_line(tmp_path):
    tracker = Tracker(tmp_path, {})
    (tmp_path / "metrics.jsonl").symlink_to("/dev/full")  # every write: no space left
    with pytest.raises(FromScratchError) as refused:
        tracker.log({"loss": 1.0}, step=1)
    assert (
        str(refused.value)
        == f"{tmp_path / 'metrics.jsonl'}: cannot be written: No space left on device"
    )


def test_a_run_wandb_refuses_is_one_line(tmp_path):
    """What W&B refuses (a project name with a slash) is no reason to log offline: said in
    a line, not W&B's traceback of forty."""
    for mode in ("offline", "online"):
        with pytest.raises(FromScratchError) as refused:
            Tracker(tmp_path / mode, {}, mode=mode, project="course/fromscratch")
        said = str(refused.value)
        assert said.startswith("W&B cannot start the run: UsageError: Invalid project name")
        assert "\n" not in said
        wandb.teardown()


def test_a_job_that_inherits_a_wandb_service_writes_its_run_in_its_own_folder(
    tmp_path, monkeypatch
):
    """A process with a W&B run of its own (a notebook, a test) hands its service to the
    processes it starts (WANDB_SERVICE); that service runs in the first process's folder.
    A job's run, given a folder relative to the job's, must still land there."""
    wandb.teardown()  # a service started here, in a folder of this test's
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    parent = Tracker(tmp_path / "parent", {}, mode="offline")
    assert "WANDB_SERVICE" in os.environ
    (tmp_path / "job").mkdir()
    job = "from fromscratch.track import Tracker; Tracker('run', {}, mode='offline').finish({}, {})"
    subprocess.run([sys.executable, "-c", job], cwd=tmp_path / "job", check=True, timeout=120)
    parent.finish({}, {})
    wandb.teardown()  # its service done writing the files
    assert list((tmp_path / "job" / "run" / "wandb").glob("offline-run-*/*.wandb"))
    assert not (tmp_path / "here" / "run").exists()


def test_a_run_is_listed_in_wandb_under_its_name_or_its_folders_in_its_entity(tmp_path):
    named = Tracker(
        tmp_path / "seed0", {}, mode="offline", name="position/learned/seed0", entity="course"
    )
    assert (named.wandb.name, named.wandb.entity) == ("position/learned/seed0", "course")
    named.finish({}, {})
    unnamed = Tracker(tmp_path / "seed1", {}, mode="offline")
    assert unnamed.wandb.name == "seed1"
    unnamed.finish({}, {})


def test_a_run_goes_on_when_wandbs_service_dies(tmp_path, capsys):
    """scancel signals a job's every process, W&B's service too: the training loop must
    still reach its checkpoint, and the metrics still reach metrics.jsonl."""
    tracker = Tracker(tmp_path, {}, mode="offline")
    tracker.log({"loss": 2.0}, step=1)
    service = children(os.getpid())
    assert service, "W&B's service runs as a child process"
    for pid in service:
        os.kill(pid, signal.SIGKILL)
    for step in (2, 3):
        tracker.log({"loss": 1.0}, step=step)
    tracker.finish({"loss": 1.0}, {})
    assert "W&B stopped" in capsys.readouterr().err
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").open()]
    assert steps == [1, 2, 3] and (tmp_path / "summary.json").exists()

    # and W&B works again for the runs that follow, with a service of their own
    again = Tracker(tmp_path / "next", {}, mode="offline")
    again.log({"loss": 0.5}, step=1)
    again.finish({"loss": 0.5}, {})
    assert list((tmp_path / "next" / "wandb").glob("offline-run-*"))


def test_only_the_current_runs_are_synced_by_the_readme_command(tmp_path, capsys):
    """A run resumed offline adds to its W&B folder; one started afresh in the same folder
    moves the abandoned run's W&B files aside, where the README's `find` does not look."""
    run = tmp_path / "results" / "demo" / "runs" / "attention" / "multihead" / "seed0"
    first = Tracker(run, {}, mode="offline")
    first.finish({}, {})
    resumed = Tracker(run, {}, mode="offline", run_id=first.run_id, resume_step=0)
    resumed.finish({}, {})
    first_runs = sorted(p.name for p in (run / "wandb").glob(f"offline-run-*-{first.run_id}*"))
    assert first_runs and not (run / "wandb.stale-1").exists()  # one a second, by its name
    afresh = Tracker(run, {}, mode="offline")
    afresh.finish({}, {})
    assert capsys.readouterr().err.endswith(
        f"wandb of an earlier run moved to {run / 'wandb.stale-1'}\n"
    )
    assert sorted(p.name for p in (run / "wandb.stale-1").glob("offline-run-*")) == first_runs

    # README: find results/<preset> -type d -path '*/wandb/offline-run-*' -prune -exec wandb sync
    found = subprocess.run(
        ["find", str(tmp_path / "results" / "demo"), "-type", "d", "-path",
         "*/wandb/offline-run-*", "-prune", "-print"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert [Path(p).name.rsplit("-", 1)[-1] for p in found] == [afresh.run_id]


def key(item) -> str:
    """A W&B record item's metric name: one with "/" is sent as its parts."""
    return item.key or "/".join(item.nested_key)


def history_rows(run_folder: Path, run_id: str) -> list[tuple[int, dict]]:
    """The (step, row) pairs that `wandb sync` of the run's offline folders would upload, in
    its order: folder by folder, oldest first; each file must hold a record, and none cut
    short (`wandb sync` stops there)."""
    wandb.teardown()  # W&B's service may still be writing a finished run's file: it ends first
    rows = []
    for run_file in sorted(run_folder.glob(f"wandb/offline-run-*-{run_id}/*.wandb")):
        data = run_file.read_bytes()
        assert track.cut_offline_file(run_file, step=10**9) > 0, f"{run_file}: no record"
        assert run_file.read_bytes() == data, f"{run_file} ends inside a record"
        for record in track.offline_records(run_file):
            if record.WhichOneof("record_type") == "history":
                row = {key(item): json.loads(item.value_json) for item in record.history.item}
                rows.append((record.history.step.num, row))
    return rows


def history(run_folder: Path, run_id: str) -> list[tuple[int, float]]:
    """The (step, loss) rows of history_rows."""
    return [(step, row["loss"]) for step, row in history_rows(run_folder, run_id)]


def next_second():
    """W&B names a start's folder by the second it began: two starts, two folders."""
    time.sleep(1 - time.time() % 1)


def test_a_resume_from_an_earlier_step_sends_each_step_to_wandb_once(tmp_path):
    """Steps logged after the checkpoint are logged again: metrics.jsonl drops its old
    lines, and the earlier offline file ends at the checkpoint, so that `wandb sync`
    uploads each step once, in order, with this start's values."""
    first = Tracker(tmp_path, {}, mode="offline")
    for step in range(1, 7):
        first.log({"loss": 1.0}, step)
    first.finish({}, {})
    wandb.teardown()  # its service done writing its file
    next_second()
    resumed = Tracker(tmp_path, {}, mode="offline", run_id=first.run_id, resume_step=3)
    # online, W&B continues the run of that id (it refuses a known id under "never")
    assert (resumed.wandb.id, resumed.wandb.settings.resume) == (first.run_id, "allow")
    for step in range(4, 9):
        resumed.log({"loss": 0.5}, step)
    resumed.finish({}, {})
    assert history(tmp_path, first.run_id) == [(1, 1.0), (2, 1.0), (3, 1.0)] + [
        (step, 0.5) for step in range(4, 9)
    ]
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").open()]
    assert steps == list(range(1, 9))


def test_a_run_stopped_in_its_final_evaluation_sends_its_last_step_once(tmp_path):
    """Stopped after the checkpoint of its last step (in the final evaluation, or after it),
    a run resumes at that step and logs the evaluation again: the earlier file gives up
    its last row, which the resumed start writes whole, the training values included. A
    resumed start with nothing to log writes no row at all."""
    first = Tracker(tmp_path, {}, mode="offline")
    for step in range(1, 7):
        first.log({"loss": 1.0}, step)
    first.close()  # a stop signal in the final evaluation
    wandb.teardown()
    next_second()
    resumed = Tracker(tmp_path, {}, mode="offline", run_id=first.run_id, resume_step=6,
                      resume_lines=6)  # fmt: skip
    resumed.log({"test/loss": 0.5}, 6)  # the final evaluation, at the last step
    resumed.finish({}, {})
    rows = history_rows(tmp_path, first.run_id)
    assert [step for step, _ in rows] == list(range(1, 7))
    assert rows[-1][1]["loss"] == 1.0 and rows[-1][1]["test/loss"] == 0.5
    next_second()  # a checkpoint after a step that logged nothing, and a stop after it
    again = Tracker(tmp_path, {}, mode="offline", run_id=first.run_id, resume_step=7,
                    resume_lines=7)  # fmt: skip
    again.finish({}, {})
    assert [step for step, _ in history_rows(tmp_path, first.run_id)] == list(range(1, 7))


def test_an_online_resume_from_an_earlier_step_says_what_wandb_keeps(tmp_path, monkeypatch, capsys):
    """W&B's server drops a log of a step below its run's current one: it keeps its first
    values of the steps logged after the checkpoint, metrics.jsonl this start's."""
    first = Tracker(tmp_path, {}, mode="disabled")
    for step in range(1, 7):
        first.log({"loss": 1.0}, step)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # no server: it goes offline
    monkeypatch.setattr(track, "INIT_TIMEOUT_S", 5)
    Tracker(tmp_path, {}, mode="online", run_id=first.run_id, resume_step=3).finish({}, {})
    assert capsys.readouterr().err.startswith(
        "W&B keeps any values it has of steps 4..6, logged before the run stopped; "
        f"{tmp_path / 'metrics.jsonl'} has those of this run\n"
    )


def test_a_start_killed_before_wandb_wrote_a_record_leaves_nothing_to_stop_wandb_sync(
    tmp_path, capsys
):
    """W&B's service writes nothing for the first seconds: a start killed then leaves a file
    of its 7-byte header alone, on which `wandb sync` gives up, and uploads no run of the
    call. That folder goes aside, and the resumed start sends W&B every kept line, step 0's
    too."""
    first = Tracker(tmp_path, {}, mode="offline")
    for step in (0, 1, 2, 3):
        first.log({"loss": 1.0}, step)
    first.finish({}, {})
    wandb.teardown()  # its service done writing its file
    (killed,) = (tmp_path / "wandb").glob(f"offline-run-*-{first.run_id}")
    for run_file in killed.glob("*.wandb"):
        run_file.write_bytes(run_file.read_bytes()[:7])  # as a kill at its start leaves it
    capsys.readouterr()
    next_second()
    resumed = Tracker(tmp_path, {}, mode="offline", run_id=first.run_id, resume_step=2)
    resumed.log({"loss": 0.5}, 3)
    resumed.finish({}, {})
    aside = tmp_path / "wandb.unreadable" / killed.name
    assert capsys.readouterr().err == (
        f"{killed}: no whole W&B record (a start killed early); moved to {aside}\n"
    )
    assert aside.is_dir() and not killed.exists()
    assert history(tmp_path, first.run_id) == [(0, 1.0), (1, 1.0), (2, 1.0), (3, 0.5)]


@pytest.mark.parametrize("cut", ["half", "newline"])
@pytest.mark.parametrize("checkpoint_step", [4, 5, 6], ids=["before", "just-before", "at-it"])
def test_a_metric_line_cut_short_by_a_kill_spoils_no_line_on_resume(tmp_path, checkpoint_step, cut):
    """A kill while a line is written leaves part of it. A checkpoint that counted no lines
    (resume_lines) keeps the lines up to its step, and a line cut in half has none to read:
    kept, it would spoil metrics.jsonl, the next line joined to it. A line that lost only
    its newline is a whole record: kept, on a line of its own."""
    lines = [json.dumps({"step": step, "loss": 1.0 / step}) + "\n" for step in range(1, 7)]
    lines[-1] = lines[-1][: len(lines[-1]) // 2] if cut == "half" else lines[-1][:-1]
    (tmp_path / "metrics.jsonl").write_text("".join(lines))
    resumed = Tracker(tmp_path, {}, run_id="cut000000001", resume_step=checkpoint_step)
    resumed.log({"loss": 0.25}, step=checkpoint_step + 1)
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").open()]
    whole = range(1, 7 if cut == "newline" else 6)
    expected = [step for step in whole if step <= checkpoint_step] + [checkpoint_step + 1]
    assert [line["step"] for line in logged] == expected
    assert logged[-1]["loss"] == 0.25  # this run's line, not one logged before the kill


def test_a_new_run_keeps_an_earlier_runs_lines_and_summary_aside(tmp_path, capsys):
    """Started afresh in a folder that holds another run, a run neither deletes its metric
    lines nor leaves its summary or its model beside the new lines."""
    earlier = Tracker(tmp_path, {}, outputs=("model.pt",))
    earlier.log({"loss": 2.0}, step=1)
    (tmp_path / "model.pt").write_bytes(b"the earlier run's weights")
    earlier.finish({"loss": 2.0}, {})
    Tracker(tmp_path, {}, run_id=earlier.run_id, resume_step=1, outputs=("model.pt",))
    assert not list(tmp_path.glob("*.stale-*"))  # the same run, going on: nothing moved
    capsys.readouterr()
    Tracker(tmp_path, {}, outputs=("model.pt",))
    assert capsys.readouterr().err == (
        f"metrics.jsonl of an earlier run moved to {tmp_path / 'metrics.jsonl.stale-1'}\n"
        f"summary.json of an earlier run moved to {tmp_path / 'summary.json.stale-1'}\n"
        f"model.pt of an earlier run moved to {tmp_path / 'model.pt.stale-1'}\n"
    )
    assert (tmp_path / "model.pt.stale-1").read_bytes() == b"the earlier run's weights"
    assert (tmp_path / "metrics.jsonl.stale-1").read_text() == '{"step": 1, "loss": 2.0}\n'
    assert json.loads((tmp_path / "summary.json.stale-1").read_text())["loss"] == 2.0
    assert not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "summary.json").exists()


def test_wandb_keeps_every_step_and_the_whole_runs_summary(tmp_path):
    """The last step's row reaches W&B's history, and the summary keeps the run's own
    values (its tokens/s over the whole run), not that row's (its last window's)."""
    tracker = Tracker(tmp_path, {}, mode="offline")
    for step, tokens_per_s in ((10, 900.0), (20, 1100.0), (30, 500.0)):
        tracker.log({"train/loss": 3.0 - step / 100, "tokens_per_s": tokens_per_s}, step=step)
    built = {"n_layer": 2, "n_embd": 68}  # as a study's summary says what it trained
    tracker.finish({"tokens_per_s": 1000.0, "train/loss": 2.7, "model_config": built}, {})
    wandb.teardown()  # its service done writing the file
    (run_file,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    rows, summary = [], {}
    for record in track.offline_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            row = {key(item): json.loads(item.value_json) for item in record.history.item}
            rows.append((row["_step"], row["tokens_per_s"]))
        elif kind == "summary":
            for item in record.summary.update:
                summary[key(item)] = json.loads(item.value_json)
    assert rows == [(10, 900.0), (20, 1100.0), (30, 500.0)]
    assert summary["tokens_per_s"] == 1000.0 and summary["train/loss"] == 2.7
    assert summary["model_config"] == built
    # a file cut short by a kill, or damaged, reads as far as it is whole
    assert list(track.offline_history_steps(run_file)) == [10, 20, 30]
    data = run_file.read_bytes()
    second_row_end = [
        end
        for record, end in track._whole_records(data)
        if record.WhichOneof("record_type") == "history"
    ][1]
    for damaged, whole in (
        (data[: second_row_end + 20], [10, 20]),  # cut inside the record after the 2nd row
        (data[:7] + b"\xff" * 64, []),
    ):
        (tmp_path / "damaged.wandb").write_bytes(damaged)
        assert list(track.offline_history_steps(tmp_path / "damaged.wandb")) == whole


def test_a_resumed_runs_wall_time_counts_every_start(tmp_path):
    """The starts before this one (their wall time up to the checkpoint resumed from) add
    to this one's, in the summary and in the next checkpoint."""
    tracker = Tracker(tmp_path, {}, resume_step=0, resume_lines=0, resume_wall_s=1000.0)
    assert 1000 <= tracker.checkpoint_state()["wall_time_s"] < 1010
    assert 1000 <= tracker.finish({}, {})["wall_time_s"] < 1010


def test_a_figure_jobs_png_csv_and_pdf_reach_wandb(tmp_path):
    """Figures as images, tables as tables, and a poster's PDF among the run's files (in an
    offline run, copied to its files folder and recorded to be uploaded by `wandb sync`)."""
    out = tmp_path / "figures"
    out.mkdir()
    Image.new("RGB", (4, 3), "white").save(out / "poster.png")
    (out / "runs.csv").write_text("variant,accuracy\nmultihead,0.8\n")
    # longer than a W&B table shows: the whole file among the run's files instead
    rows = wandb.Table.MAX_ROWS + 1
    (out / "curves.csv").write_text("step\n" + "".join(f"{i}\n" for i in range(rows)))
    (out / "poster.pdf").write_bytes(b"%PDF-1.4 a poster")
    tracker = Tracker(tmp_path / "run", {}, mode="offline")
    tracker.log_files(
        images=[out / "poster.png"],
        tables=[out / "runs.csv", out / "curves.csv"],
        files=[out / "poster.pdf"],
    )
    tracker.finish({}, {})
    wandb.teardown()
    (run_folder,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    assert (run_folder / "files" / "poster.pdf").read_bytes() == b"%PDF-1.4 a poster"
    assert (run_folder / "files" / "curves.csv").read_text().count("\n") == rows + 1
    (run_file,) = run_folder.glob("run-*.wandb")
    records = list(track.offline_records(run_file))
    saved = [f.path for r in records if r.WhichOneof("record_type") == "files"
             for f in r.files.files]  # fmt: skip
    assert {"poster.pdf", "curves.csv"} <= set(saved)
    logged = {key(item).split("/")[0] for r in records
              if r.WhichOneof("record_type") == "history" for item in r.history.item}  # fmt: skip
    assert {"poster", "runs table"} <= logged and "curves table" not in logged


def test_a_figure_job_logs_to_wandb_without_loading_torch(tmp_path):
    """The figure code and its W&B run (as `published` makes it) in a fresh process: torch
    stays out (two seconds of every figure job), and the run's summary still names the
    torch installed."""
    code = f"""
import json, sys
import fromscratch.figures.plots, fromscratch.figures.poster, fromscratch.figures.tables
from fromscratch.track import TrackingConfig
TrackingConfig(wandb_mode="offline", job_type="figures").log_results(
    {str(tmp_path / "run")!r}, {{"rule": "poster"}}, [{{"panels": 3}}], {{}})
print(json.dumps(sorted({{"torch", "numpy"}} & set(sys.modules))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == ["numpy"]  # numpy: pandas, matplotlib
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    import torch

    assert summary["versions"]["torch"] == torch.__version__ and summary["processor"]


def test_evaluations_and_samples_join_the_training_runs_in_wandb(demo_chars, tmp_path):
    """Scores on other sets and generated text, made after a run ends, are W&B runs of their
    own in the run's group (job types evaluate and sample), named after it; the samples
    a W&B table. The training run's charts are against its tokens, as the figures are."""
    from fromscratch.stages.evaluate import evaluate_stage, sample_stage
    from fromscratch.train import TrainConfig, train

    tracking = {"wandb_mode": "offline", "group": "demo-position", "run_name": "position/x/seed0"}
    spec = tiny_gpt(demo_chars, max_steps=2, eval_splits="") | tracking
    train(TrainConfig.from_dict(spec), tmp_path / "run")
    assert chart_x_axis(wandb_records(tmp_path / "run")) == "tokens"
    model = str(tmp_path / "run" / "model.pt")
    scores = evaluate_stage(model, {"ood": {"split": "ood"}}, str(tmp_path / "eval.json"), 500)
    sample_stage(model, str(tmp_path / "samples.txt"), prompt="the", tokens=5, num_samples=2)
    texts = (tmp_path / "samples.txt").read_text().rstrip("\n").split("\n\n---\n\n")
    (table_file,) = (tmp_path / "samples.txt.wandb" / "wandb").glob(
        "offline-run-*/files/media/table/samples_0_*.table.json"
    )
    table = json.loads(table_file.read_text())
    assert table == {"columns": ["sample", "prompt", "text"],
                     "data": [[0, "the", texts[0]], [1, "the", texts[1]]]}  # fmt: skip
    # (in the summary, the table is a reference to its file: samples/_type, samples/path...)
    for stage, keys in (("eval.json", {"ood/bits_per_token"}), ("samples.txt", {"samples/_type"})):
        records = wandb_records(tmp_path / f"{stage}.wandb")
        (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        job_type = {"eval.json": "evaluate", "samples.txt": "sample"}[stage]
        assert (run.run_group, run.job_type) == ("demo-position", job_type)
        assert run.display_name == f"position/x/seed0/{job_type}"
        summary = {key(item) for r in records if r.WhichOneof("record_type") == "summary"
                   for item in r.summary.update}  # fmt: skip
        assert keys <= summary
    written = json.loads((tmp_path / "eval.json.wandb" / "summary.json").read_text())
    assert written["ood/bits_per_token"] == scores["ood"]["bits_per_token"]
    # an output named after the run's folder leaves the run's own files where they are
    trained = json.loads((tmp_path / "run" / "summary.json").read_text())
    evaluate_stage(model, {"ood": {"split": "ood"}}, str(tmp_path / "run.json"), 500)
    sample_stage(model, str(tmp_path / "run.txt"), prompt="the", tokens=5)
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == trained
    assert not list((tmp_path / "run").glob("*.stale-*"))
    sample_stage(model, str(tmp_path / "notes"), prompt="the", tokens=5)  # no suffix
    assert (tmp_path / "notes").read_text().startswith("the")
    assert (tmp_path / "notes.wandb" / "summary.json").is_file()


def test_a_runs_group_job_type_tags_and_summary_reach_wandb(tmp_path):
    """W&B groups a study's runs by their group and job type and filters them by tag; its
    summary keeps the run's text values and the wall time of every start, not its own
    runtime of the last one."""
    tracker = Tracker(
        tmp_path, {"lr": 0.1}, mode="offline", group="demo-position", job_type="train",
        tags=("rope", "seed0"), resume_wall_s=1000.0,
    )  # fmt: skip
    tracker.log({"loss": 1.0}, step=1)
    written = tracker.finish({"stopped_by": "time budget", "loss": 1.0}, {"lr": 0.1})
    records = wandb_records(tmp_path)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (run.run_group, run.job_type) == ("demo-position", "train")
    assert list(run.tags) == ["rope", "seed0"]
    summary = {
        key(item): json.loads(item.value_json)
        for r in records
        if r.WhichOneof("record_type") == "summary"
        for item in r.summary.update
    }
    assert summary["stopped_by"] == "time budget" and summary["loss"] == 1.0
    assert summary["wall_time_s"] == written["wall_time_s"] >= 1000


def test_a_resumed_start_counts_the_metric_lines_it_kept(tmp_path):
    """The next checkpoint records how many lines metrics.jsonl holds: those kept from the
    earlier starts and those logged since, never the lines this start dropped."""
    first = Tracker(tmp_path, {})
    for step in range(1, 7):
        first.log({"loss": 1.0}, step)
    resumed = Tracker(tmp_path, {}, run_id=first.run_id, resume_step=3)
    assert resumed.checkpoint_state()["metric_lines"] == 3
    resumed.log({"loss": 0.5}, step=4)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert resumed.checkpoint_state()["metric_lines"] == len(lines) == 4


def test_offline_files_longer_than_a_block_read_whole(tmp_path):
    """W&B's service writes 32 KiB blocks: a record that runs past a block's end is split
    into chunks (first, middle, last), and reads as one record, its step kept."""
    tracker = Tracker(tmp_path, {}, mode="offline")
    for step in range(1, 601):
        tracker.log({f"metric_{i}": step + i / 10 for i in range(8)}, step=step)
    tracker.finish({}, {})
    wandb.teardown()  # its service done writing the file
    (run_file,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    assert run_file.stat().st_size > 3 * 32768  # several blocks, records across their ends
    assert list(track.offline_history_steps(run_file)) == list(range(1, 601))
    assert track.cut_offline_file(run_file, step=301) == len(
        list(track.offline_records(run_file))
    )  # a record at each end is whole: nothing cut there
    assert list(track.offline_history_steps(run_file)) == list(range(1, 301))


def test_an_online_resume_ends_the_offline_files_of_its_earlier_starts(
    tmp_path, monkeypatch, capsys
):
    """An online run that went offline (no server) leaves offline files as an offline run
    does: its resume, online again, cuts them at the checkpoint all the same, and says
    what W&B keeps only where steps past the checkpoint were logged."""
    first = Tracker(tmp_path, {}, mode="offline")  # as an online start without a server
    for step in range(1, 7):
        first.log({"loss": 1.0}, step)
    first.close()
    wandb.teardown()
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # no server: it goes offline
    monkeypatch.setattr(track, "INIT_TIMEOUT_S", 1)
    next_second()
    capsys.readouterr()
    resumed = Tracker(tmp_path, {}, mode="online", run_id=first.run_id, resume_step=3)
    for step in range(4, 7):
        resumed.log({"loss": 0.5}, step)
    resumed.close()
    assert "W&B keeps any values it has of steps 4..6" in capsys.readouterr().err
    assert history(tmp_path, first.run_id) == [(1, 1.0), (2, 1.0), (3, 1.0)] + [
        (step, 0.5) for step in range(4, 7)
    ]
    next_second()
    again = Tracker(tmp_path, {}, mode="online", run_id=first.run_id, resume_step=6)
    again.finish({}, {})
    assert "W&B keeps" not in capsys.readouterr().err  # nothing was logged past step 6


def test_a_resume_drops_what_was_logged_after_its_checkpoint_at_the_same_step(tmp_path):
    """A run killed after its final evaluation was logged, at the step of its last
    checkpoint: the checkpoint's line count, not the step, tells that line from the
    training lines of that step, and the resumed start logs the evaluation once."""
    first = Tracker(tmp_path, {})
    for step in range(1, 7):
        first.log({"loss": 1.0}, step)
    lines = first.checkpoint_state()["metric_lines"]  # the checkpoint after step 6
    first.log({"test/loss": 2.0}, 6)  # the final evaluation, then a kill
    resumed = Tracker(tmp_path, {}, run_id=first.run_id, resume_step=6, resume_lines=lines)
    resumed.log({"test/loss": 2.0}, 6)
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").open()]
    assert [line["step"] for line in logged] == [1, 2, 3, 4, 5, 6, 6]
    assert [line for line in logged if "test/loss" in line] == [{"step": 6, "test/loss": 2.0}]


def test_a_run_names_its_commit_and_the_code_changed_since(tmp_path):
    """A student's uncommitted edit or new file under the package is listed beside the
    commit, so that the run does not pass for one that commit alone reproduces."""
    package = tmp_path / "repo" / "src" / "pkg"
    package.mkdir(parents=True)
    (package / "model.py").write_text("POSITIONS = ('none',)\n")
    (tmp_path / "repo" / "notes.txt").write_text("outside the package\n")
    git = ["git", "-C", str(tmp_path / "repo"), "-c", "user.name=s", "-c", "user.email=s@u"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "course code"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
    assert track.git_state(package) == {"git_commit": head.stdout.strip(), "git_changes": []}
    (package / "model.py").write_text("POSITIONS = ('none', 't5')\n")
    (package / "t5.py").write_text("class T5Bias: ...\n")
    (tmp_path / "repo" / "notes.txt").write_text("edited, not code\n")
    state = track.git_state(package)
    assert state["git_changes"] == [" M src/pkg/model.py", "?? src/pkg/t5.py"]
    assert track.git_state(tmp_path / "repo" / "..") == {"git_commit": None, "git_changes": None}
