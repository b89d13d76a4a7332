"""Run tracking: metrics.jsonl, summary.json and W&B (its real client, never a server)."""

from __future__ import annotations

import json

from fromscratch import track
from fromscratch.track import Tracker


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
