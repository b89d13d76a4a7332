"""Shared test fixtures: the data mirror, a loopback HTTP file server, the demo corpus
prepared once, tiny training configs, and the local SLURM cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_mirror() -> Path:
    """The offline mirror of the real data sets (../shared/data here; $FROMSCRATCH_MIRROR).

    Skipped where there is none, except in CI, where a missing mirror is a failure.
    """
    candidates = [os.environ.get("FROMSCRATCH_MIRROR"), ROOT.parent / "shared" / "data"]
    for c in candidates:
        if c and (Path(c) / "SHA256SUMS").is_file():
            return Path(c)
    if os.environ.get("CI"):
        pytest.fail("no data mirror: set FROMSCRATCH_MIRROR")
    pytest.skip("no data mirror (set FROMSCRATCH_MIRROR)")


@pytest.fixture
def drawn(monkeypatch):
    """The figures the figure functions draw, kept open instead of written: a test reads
    what a figure shows (its lines, bars, labels) rather than trusting the file."""
    import matplotlib.pyplot as plt

    from fromscratch.figures import (
        augmentation,
        cramming,
        distillation,
        plots,
        recurrent_gpt2,
        sentence_vae,
    )

    figures = []

    def keep(fig, path):
        fig.canvas.draw()
        figures.append(fig)
        return []

    # plots.save serves the modules that call it as plots.save (perceiver, encoder_decoder)
    for module in (plots, augmentation, cramming, distillation, recurrent_gpt2, sentence_vae):
        monkeypatch.setattr(module, "save", keep)
    yield figures
    plt.close("all")


# Three seeds' shifts of a made-up result, unequally apart: their mean is not their median,
# and their sample sd (n - 1) is neither their standard error nor the population's sd, so a
# figure or table that aggregates seeds another way shows it.
SEED_SHIFTS = (0.0, 0.02, 0.10)


def error_bar_spans(ax) -> list[float]:
    """The lengths of the error bars seaborn's lineplot draws on ax (err_style="bars", line
    segments), in drawing order: 2 sd for bars of ± one sd."""
    import numpy as np
    from matplotlib.collections import LineCollection

    segments = [
        s for c in ax.collections if isinstance(c, LineCollection) for s in c.get_segments()
    ]
    return [float(np.ptp(s[:, 1])) for s in segments]


class FileServer:
    """Serves a folder over HTTP on 127.0.0.1 (port 0), with Range support and fault modes.

    `requests` records (path, Range header) of each request. Fault modes:
    `truncate_after` closes each response after that many body bytes (while announcing the
    full length); `ignore_range` answers Range requests with the whole file (200);
    `chunked` sends the body in HTTP/1.1 chunks, with no length announced; `statuses`
    answers the paths it names with that HTTP status instead.
    """

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[tuple[str, str | None]] = []
        self.truncate_after: int | None = None
        self.ignore_range = False
        self.chunked = False
        self.statuses: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # chunks need it; each response closes anyway

            def log_message(self, *args):
                pass

            def do_GET(self):
                range_header = self.headers.get("Range")
                server.requests.append((self.path, range_header))
                path = server.root / urllib.parse.unquote(self.path).lstrip("/")  # as a web server
                if not path.is_file() or self.path in server.statuses:
                    self.send_error(server.statuses.get(self.path, 404))
                    return
                data = path.read_bytes()
                start = 0
                if range_header and not server.ignore_range:
                    start = int(range_header.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                if server.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    size = 64 * 1024  # each chunk announces its size, then sends it
                    cut = server.truncate_after if server.truncate_after is not None else len(body)
                    for i in range(0, min(len(body), cut), size):
                        end = min(i + size, len(body))
                        self.wfile.write(f"{end - i:x}\r\n".encode() + body[i : min(end, cut)])
                        self.wfile.write(b"\r\n" if end <= cut else b"")
                    if cut >= len(body):
                        self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.truncate_after is not None:
                    body = body[: server.truncate_after]
                self.wfile.write(body)
                self.wfile.flush()
                if server.truncate_after is not None:
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    with FileServer(root) as server:
        yield server


@pytest.fixture(scope="session")
def demo_words(tmp_path_factory):
    from fromscratch.data import prepare

    out = tmp_path_factory.mktemp("data") / "demo-words"
    prepare("demo", out, progress=False)
    return out


@pytest.fixture(scope="session")
def demo_chars(tmp_path_factory):
    from fromscratch.data import prepare

    out = tmp_path_factory.mktemp("data") / "demo-chars"
    prepare("demo", out, tokenizer="chars", progress=False)
    return out


def tiny_gpt(data, dropout=0.1, **overrides) -> dict:
    """A training config of a GPT small enough for a CPU core (about 15 ms a step)."""
    return {
        "data": str(data),
        "model": {
            "family": "gpt",
            "n_layer": 2,
            "n_head": 2,
            "n_embd": 32,
            "context": 32,
            "dropout": dropout,
        },
        "batch_size": 8,
        "lr": 3e-3,
        "warmup_steps": 5,
        "max_steps": 40,
        "log_every": 1,
        "eval_splits": "test",
        "eval_max_tokens": 4000,
        "seed": 1,
        **overrides,
    }


def tiny_classifier(data, **overrides) -> dict:
    return {
        "data": str(data),
        "model": {"family": "classifier", "n_layer": 1, "n_head": 2, "n_embd": 32, "context": 96},
        "batch_size": 16,
        "max_length": 96,
        "lr": 3e-3,
        "max_steps": 30,
        "log_every": 5,
        "eval_splits": "test",
        "seed": 0,
        **overrides,
    }


def wandb_records(folder: Path) -> list:
    """The records of the one offline W&B run under `folder`/wandb, once W&B's service is
    done writing its file."""
    import wandb

    from fromscratch import track

    wandb.teardown()
    (run_file,) = (Path(folder) / "wandb").glob("offline-run-*/*.wandb")
    return list(track.offline_records(run_file))


def chart_x_axis(records: list) -> str:
    """What W&B draws an offline run's charts against: the step metric its records define
    for every metric ("*"), or "" where they define none (W&B's own step)."""
    axes = [r.metric.step_metric for r in records
            if r.WhichOneof("record_type") == "metric" and r.metric.glob_name == "*"]  # fmt: skip
    assert len(axes) <= 1, axes
    return axes[0] if axes else ""


START_SLURM = "bash tests/slurm/cluster.sh start"


def _answers(*command: str) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """A SLURM cluster that takes jobs and answers `sacct` (submitit polls it).

    Skipped where there is none, except in CI, where .ci/run starts it and a missing
    cluster is a failure."""
    if _answers("sinfo", "-h") and _answers("sacct", "-n", "-X", "-S", "now"):
        return
    if os.environ.get("CI"):
        pytest.fail(f"no SLURM cluster (sinfo or sacct fails): CI must run `{START_SLURM}`")
    pytest.skip(f"no SLURM cluster (sinfo or sacct fails); start one with `{START_SLURM}`")


def as_from_a_terminal() -> None:
    """preexec_fn of a process that a test stops with a signal: SIGHUP and SIGINT at their
    defaults, as in a process started from a terminal, whatever this test run inherited
    (started under nohup it ignores SIGHUP; started in the background by a shell script,
    SIGINT), and so would every process it starts."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def children(pid: int) -> list[int]:
    """The processes `pid` started (Linux), and theirs."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *children(int(child))]
    return found


# `make test` runs the suite on two pytest-xdist workers. Each test file is one unit of work,
# so its module fixtures are made once; the files that use the one local SLURM cluster (its
# two GPUs, and its queue, which some tests check is empty at their end) are one unit
# together, on one worker, and handed out first: about 9 minutes alone, it is the longest.
ON_THE_CLUSTER = ("tests/slurm/", "tests/workflow/test_demo.py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ByFileClusterFirst(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "cluster" if nodeid.startswith(ON_THE_CLUSTER) else nodeid.split("::")[0]

        def _assign_work_unit(self, node) -> None:
            if "cluster" in self.workqueue:
                self.workqueue.move_to_end("cluster", last=False)
            super()._assign_work_unit(node)

    return ByFileClusterFirst(config, log)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread_per_worker():
    """Two workers on a 2-core machine: each with one thread, not two threads each fighting
    over the cores. The processes the tests start (a training run, Snakemake's jobs) take
    one too, unless told otherwise: three training runs of two threads each on two cores
    took 52 s where they take 7 s with one thread each, and a test ran out of time."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
        os.environ["OMP_NUM_THREADS"] = "1"
