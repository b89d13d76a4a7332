"""The benchmark harness: a real (very short) benchmark run, and its row in RESULTS.md."""

import argparse
import importlib
import json
import os
import subprocess
import sys

import pytest

from tests.workflow.conftest import ROOT

BENCHMARKS = ROOT / "benchmarks"


def import_benchmark(name: str):
    """A module of benchmarks/ (they import each other as top-level modules)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_sampling_benchmark_fills_its_row_of_the_results_table(tmp_path):
    out = tmp_path / "sampling.json"
    subprocess.run(
        [sys.executable, "bench_sampling.py", "--rounds", "1", "--new-tokens", "8", "--out", out],
        cwd=BENCHMARKS,
        check=True,
        capture_output=True,
    )
    result = json.loads(out.read_text())
    rates = result["tokens_per_s"]
    assert set(rates) == {"ours (KV cache)", "ours (no cache)", "HF generate (KV cache)"}
    assert all(rate > 0 for rate in rates.values())
    assert result["machine"]["cores"] >= 1

    table = import_benchmark("report").render({"sampling": result})
    ratio = result["ratio_vs_hf_generate"]
    row = next(line for line in table.splitlines() if "HF generate" in line)
    assert f"×{ratio:.2f}" in row and result["machine"]["date"] in row
    assert "Not run yet:" in table  # the other benchmarks are listed as missing


def test_training_loop_benchmark_fills_its_row_of_the_results_table(tmp_path):
    out = tmp_path / "train_loop.json"
    subprocess.run(
        [sys.executable, "bench_train_loop.py", "--configs", "small", "--rounds", "1",
         "--out", out],
        cwd=BENCHMARKS, check=True, capture_output=True,
    )  # fmt: skip
    result = json.loads(out.read_text())
    small = result["results"]["small"]
    assert set(small["tokens_per_s"]) == {"loop", "bare step"}
    assert all(rate > 0 for rate in small["tokens_per_s"].values())
    assert small["config"]["vocab_size"] == 38  # the demo corpus's 37 characters + separator
    table = import_benchmark("report").render({"train_loop": result}).splitlines()
    row = next(line for line in table if line.startswith("| training loop"))
    assert f"×{small['ratio_loop_vs_bare']:.2f}" in row and "NVIDIA" not in row


def test_throughput_breakdown_finds_the_matmuls_and_the_attention_kernel():
    bench = import_benchmark("bench_gpt_throughput")
    import torch

    from fromscratch.models import GPT, GPTConfig

    x = torch.randint(0, 65, (2, 16))
    ms = {}
    for fast in (True, False):
        model = GPT(GPTConfig(vocab_size=65, context=16, n_layer=2, n_head=2, n_embd=32, fast=fast))
        step = bench.make_step(model, bench.ours_loss, bench.adamw(model, fused=True), x, x)
        step()
        ms[fast] = bench.time_breakdown(step, 3)
    assert set(ms[True]) == {"matmul", "attention kernel", "optimizer", "other ops", "python"}
    assert ms[True]["matmul"] > 0 and ms[True]["optimizer"] > 0
    assert ms[True]["attention kernel"] > 0  # the fused kernel
    assert ms[False]["attention kernel"] == 0  # plain attention: matmuls and a softmax


# nanoGPT's interface (GPTConfig, GPT(config), forward(idx, targets) -> (logits, loss)), here
# around our own GPT: nanoGPT itself is a clone the user points the benchmark at
NANOGPT_LIKE_MODEL_PY = """
import dataclasses

import torch.nn.functional as F

from fromscratch.models import GPT as OurGPT, GPTConfig as OurConfig


@dataclasses.dataclass
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50304
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True


class GPT(OurGPT):
    def __init__(self, config):
        super().__init__(OurConfig(
            vocab_size=config.vocab_size, context=config.block_size, n_layer=config.n_layer,
            n_head=config.n_head, n_embd=config.n_embd, dropout=config.dropout,
            bias=config.bias, fast=True,
        ))

    def forward(self, idx, targets=None):
        logits = super().forward(idx)
        if targets is None:
            return logits[:, [-1], :], None
        return logits, F.cross_entropy(logits.flatten(0, 1), targets.flatten())
"""


def test_throughput_benchmark_times_a_nanogpt_clone_and_reports_the_goal(tmp_path):
    """In nanoGPT's own configuration: no biases in ours and nanoGPT, GPT-2's in HF."""
    clone = tmp_path / "nanoGPT"
    clone.mkdir()
    (clone / "model.py").write_text(NANOGPT_LIKE_MODEL_PY)
    out = tmp_path / "gpt_throughput.json"
    subprocess.run(
        [sys.executable, "bench_gpt_throughput.py", "--configs", "small", "--rounds", "1",
         "--nanogpt", clone, "--no-bias", "--out", out],
        cwd=BENCHMARKS, check=True, capture_output=True,
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert result["settings"]["bias"] is False
    small = result["results"]["small"]
    # HF's biases: per layer qkv 3C + proj C + fc 4C + proj C + 2 LayerNorms 2C; + ln_f C
    C, layers = small["config"]["n_embd"], small["config"]["n_layer"]
    assert small["parameters"]["hf"] - small["parameters"]["ours"] == layers * 11 * C + C
    # each model's MFU counts its own FLOPs: 6 a token for each of HF's biases too
    flops = small["flops_per_token"]
    assert flops["hf"] - flops["ours"] == 6 * (layers * 11 * C + C)
    assert flops["nanogpt"] == flops["ours"]
    for label in ("ours", "hf"):
        rate, peak = small["tokens_per_s_rounds"][label][0], small["matmul_gflops_rounds"][0]
        assert small["mfu"][label] == pytest.approx(flops[label] * rate / (peak * 1e9))
    # HF again with GPT-2's GELU as one kernel, in the same rounds
    assert set(small["tokens_per_s"]) == {"ours", "hf", "nanogpt", "hf gelu_pytorch_tanh"}
    assert all(rate > 0 for rate in small["tokens_per_s"].values())
    ours, nanogpt, fused = (
        small["tokens_per_s_rounds"][label][0]
        for label in ("ours", "nanogpt", "hf gelu_pytorch_tanh")
    )
    assert small["ratio_ours_vs_nanogpt"] == pytest.approx(ours / nanogpt)  # one round
    assert small["ratio_ours_vs_hf_fused_gelu"] == pytest.approx(ours / fused)
    assert small["goal"] is None  # one round says nothing of the goals
    # one memory-bandwidth timing per round, beside the matmul rate
    assert len(small["memory_gbps_rounds"]) == len(small["matmul_gflops_rounds"]) == 1
    assert result["memory_gbps"] == small["memory_gbps_rounds"][0] > 0

    table = import_benchmark("report").render({"gpt_throughput": result}).splitlines()
    row = next(line for line in table if "nanoGPT's model.py" in line)
    assert f"×{small['ratio_ours_vs_nanogpt']:.2f}" in row
    assert f"{small['tokens_per_s']['nanogpt']:,.0f} tok/s" in row
    row = next(line for line in table if "| HF GPT2LMHeadModel (GPT-2's GELU, gelu_new" in line)
    assert "(goal" not in row and "no biases (nanoGPT's default" in row
    row = next(line for line in table if "its GELU as one kernel (gelu_pytorch_tanh)" in line)
    assert f"×{small['ratio_ours_vs_hf_fused_gelu']:.2f}" in row
    row = next(line for line in table if "where the time goes" in line)
    assert f"memory {result['memory_gbps']:.1f} GB/s" in row


def test_a_gpu_result_names_its_gpu_in_the_table():
    """The kept GPU run (benchmarks/gpu.sh): its machine line and rows say which card."""
    result = json.loads((BENCHMARKS / "results" / "gpt_throughput-cuda.json").read_text())
    gpu = result["device"]
    assert gpu != result["cpu"]
    table = import_benchmark("report").render({"gpt_throughput-cuda": result}).splitlines()
    assert f"- {gpu} with {result['cpu']} ({result['machine']['cores']} cores" in "\n".join(table)
    rows = [line for line in table if line.startswith("| GPT training tokens/s, gpt2")]
    assert len(rows) == 2  # eager and compiled
    assert all(row.endswith(f"| {gpu}, {result['machine']['date']} |") for row in rows)


def test_each_variant_of_ours_is_its_own_throughput_result():
    """A --no-bias, --plain, --levers or short run must not overwrite the default run's JSON."""
    bench = import_benchmark("bench_gpt_throughput")
    parser_defaults = dict(device="cpu", precision="fp32", no_bias=False, plain=False,
                           no_fused=False, levers=False, nanogpt=None, rounds=21)  # fmt: skip

    def name(**changes):
        return bench.result_name(argparse.Namespace(**{**parser_defaults, **changes}))

    assert name() == "gpt_throughput"
    assert name(no_bias=True) == "gpt_throughput-nobias"
    assert name(precision="bf16") == "gpt_throughput-bf16"
    assert name(device="cuda", precision="bf16") == "gpt_throughput-cuda"
    assert name(plain=True, no_fused=True) == "gpt_throughput-plain-foreach"
    # other models between ours and HF, or fewer rounds: never the run the goals are read from
    assert name(levers=True, rounds=3) == "gpt_throughput-levers-short"
    assert name(nanogpt="~/nanoGPT") == "gpt_throughput-nanogpt"
    assert set(import_benchmark("run").BENCHMARKS) <= set(import_benchmark("report").ROWS)


def test_a_variant_run_has_its_rows_in_the_table_and_says_what_it_changed():
    result = json.loads((BENCHMARKS / "results" / "gpt_throughput.json").read_text())
    result["settings"]["ours"] = result["settings"]["ours"].replace("fast=True", "fast=False")
    result["settings"]["optimizer"] = result["settings"]["optimizer"].replace(
        "fused=True", "fused=False"
    )
    report = import_benchmark("report")
    table = report.render({"gpt_throughput-plain-foreach": result}).splitlines()
    rows = [line for line in table if line.startswith("| GPT training tokens/s")]
    assert len(rows) == 4  # small and mid, each against HF as it comes and with its GELU fused
    assert all("(fast=False)" in row and "for-each kernels" in row for row in rows)
    assert report.rows_of("no_such_benchmark") is None


def test_the_lr_grid_row_names_the_grid_alone():
    """The range test's own LR is the row's subject, not one of the grid it is set against."""
    result = json.loads((BENCHMARKS / "results" / "lr-grid.json").read_text())
    (row,) = import_benchmark("report").rows_lr_grid(result)
    assert row[2] == "best of the grid 3e-04, 1e-03, 3e-03, 1e-02"
    assert row[1].startswith(f"lr {result['range_test_lr']:.2g}:")
    assert row[0].endswith(f"{result['steps']} steps per run (what 30 s fit)")
    del result["steps"]  # as written before every run had the same steps
    assert import_benchmark("report").rows_lr_grid(result)[0][0].endswith(", 30 s per run")


def test_throughput_benchmark_names_the_missing_nanogpt_model_file(tmp_path):
    run = subprocess.run(
        [sys.executable, "bench_gpt_throughput.py", "--configs", "small", "--nanogpt", tmp_path],
        cwd=BENCHMARKS, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode != 0
    assert f"no {tmp_path / 'model.py'}" in run.stderr and "karpathy/nanoGPT" in run.stderr


def test_a_mirror_named_relative_to_the_project_reaches_the_benchmarks(monkeypatch):
    """`FROMSCRATCH_MIRROR=../shared/data make bench`: the benchmarks run in benchmarks/."""
    run = import_benchmark("run")
    monkeypatch.chdir(ROOT)
    env = run.children_environment({"FROMSCRATCH_MIRROR": "../shared/data", "HOME": "/h"})
    assert env == {"FROMSCRATCH_MIRROR": str(ROOT.parent / "shared" / "data"), "HOME": "/h"}
    url = {"FROMSCRATCH_MIRROR": "https://example.org/mirror"}
    assert run.children_environment(url) == url


def test_imdb_quality_bar_trains_on_every_training_review_or_holds_val_out(tmp_path):
    """A few steps of the IMDb bar's recipe on the small IMDb archive the data tests make.
    The bar's run trains on train+val, with a vocabulary fitted on both, and is scored on
    test; a run that judges a change to the recipe holds val out of both, and its val
    accuracy is beside the test's in the JSON, the figure and the table."""
    from fromscratch.data import PreparedData
    from tests.data.fixtures import make_mirror

    mirror = make_mirror(tmp_path / "mirror")
    sets = ["max_steps=4", "eval_every=2", "batch_size=2", "warmup_steps=1", "max_length=32",
            "head_tokens=8", "model.context=32"]  # fmt: skip
    report = import_benchmark("report")

    # the small archive in a cache of its own, not the one the real data goes to
    cache = {**os.environ, "FROMSCRATCH_CACHE": str(tmp_path / "cache")}

    def bench(mode, *extra):
        return subprocess.run(
            [sys.executable, "bench_quality.py", "imdb", "--mirror", mirror, "--run",
             tmp_path / mode / "run", "--out", tmp_path / mode / "quality-imdb.json",
             *(a for s in sets + list(extra) for a in ("--set", s))],
            cwd=BENCHMARKS, capture_output=True, text=True, env=cache,
        )  # fmt: skip

    choice = ["train_split=train", "eval_splits=val,test"]
    for mode, extra in (("final", []), ("choice", choice)):
        data = tmp_path / f"data-{mode}"
        assert bench(mode, f"data={data}", *extra).returncode == 0
        assert PreparedData(data).meta["config"]["fit_on"] == ("train" if extra else "train+val")
        result = json.loads((tmp_path / mode / "quality-imdb.json").read_text())
        assert result["metric"] == "test/accuracy" and 0 <= result["value"] <= 1
        assert (tmp_path / mode / "quality-imdb.png").stat().st_size > 0  # steps 2 and 4
        row = next(line for line in report.render({"quality-imdb": result}).splitlines()
                   if "quality-imdb" in line)  # fmt: skip
        assert f"{result['value']:.4f} after" in row
        if mode == "final":
            assert result["config"]["train_split"] == "train+val" and result["also"] == {}
            assert list(result["curves"]) == ["test/accuracy"] and "val/" not in row
            assert "trained on train+val" in row
        else:
            assert set(result["also"]) == {"val/accuracy"}
            assert [len(curve) for curve in result["curves"].values()] == [2, 2]
            assert f"val/accuracy {result['also']['val/accuracy']:.4f}" in row
    # a vocabulary that knows val's words would judge the recipe on words it has seen
    refused = bench("refused", f"data={tmp_path / 'data-final'}", *choice)
    assert refused.returncode != 0 and not (tmp_path / "refused" / "quality-imdb.json").exists()
    assert "its vocabulary is fitted on train+val, and this run trains on train" in refused.stderr
