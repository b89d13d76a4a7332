#!/usr/bin/env bash
# The GPU check and benchmark, one prepared script of a few minutes:
#  1. tests/test_gpu.py: the fast path, KV-cache sampling, training in fp32, bf16, fp16 and
#     compiled, and resuming, on the GPU (these tests are skipped where there is none);
#  2. a GPT-2-small-sized GPT (12 layers, 768 wide, context 1024, batch 16) against Hugging
#     Face's GPT2LMHeadModel of the same size, bf16 autocast, fast=True, torch.compile off
#     and on: tokens/s, and MFU against this GPU's bf16 matmul rate measured in the same run;
#  3. what the training loop costs beyond that bare step, at the same size.
#   bash benchmarks/gpu.sh [--rounds N]
#     → benchmarks/results/gpt_throughput-cuda.json, train_loop-cuda.json + RESULTS.md
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'"
tests=0
python3 -m pytest tests/test_gpu.py -v -rs -s || tests=$?  # the benchmark runs all the same
cd benchmarks
python3 bench_gpt_throughput.py --device cuda --precision bf16 --compile --configs gpt2 \
    --rounds 11 "$@"
python3 bench_train_loop.py --device cuda --precision bf16 --configs gpt2 --rounds 11
python3 report.py
exit "$tests"
