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
