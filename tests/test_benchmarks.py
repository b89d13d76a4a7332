"""The benchmark harness: a real (very short) benchmark run, and its row in RESULTS.md."""

import json
import subprocess
import sys

from tests.workflow.conftest import ROOT

BENCHMARKS = ROOT / "benchmarks"


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

    sys.path.insert(0, str(BENCHMARKS))
    try:
        import report
    finally:
        sys.path.remove(str(BENCHMARKS))
    table = report.render({"sampling": result})
    ratio = result["ratio_vs_hf_generate"]
    row = next(line for line in table.splitlines() if "HF generate" in line)
    assert f"×{ratio:.2f}" in row and result["machine"]["date"] in row
    assert "Not run yet:" in table  # the other benchmarks are listed as missing


def test_throughput_breakdown_finds_the_matmuls_and_the_attention_kernel():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from bench_gpt_throughput import adamw, make_step, ours_forward, time_breakdown
    finally:
        sys.path.remove(str(BENCHMARKS))
    import torch

    from fromscratch.models import GPT, GPTConfig

    x = torch.randint(0, 65, (2, 16))
    ms = {}
    for fast in (True, False):
        model = GPT(GPTConfig(vocab_size=65, context=16, n_layer=2, n_head=2, n_embd=32, fast=fast))
        step = make_step(model, ours_forward, adamw(model, fused=True), x, x, 65)
        step()
        ms[fast] = time_breakdown(step, 3)
    assert set(ms[True]) == {"matmul", "attention kernel", "optimizer", "other ops", "python"}
    assert ms[True]["matmul"] > 0 and ms[True]["optimizer"] > 0
    assert ms[True]["attention kernel"] > 0  # the fused kernel
    assert ms[False]["attention kernel"] == 0  # plain attention: matmuls and a softmax
