#!/usr/bin/env bash
# The GPU benchmark, one prepared script of a few minutes (on an H100: about 3):
# a GPT-2-small-sized GPT (12 layers, 768 wide, context 1024, batch 16) against Hugging
# Face's GPT2LMHeadModel of the same size, bf16 autocast, fast=True, torch.compile off and
# on, tokens/s and MFU against this GPU's bf16 matmul rate measured in the same run.
#   bash benchmarks/gpu.sh        → benchmarks/results/gpt_throughput-cuda.json + RESULTS.md
set -euo pipefail
cd "$(dirname "$0")"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'"
python bench_gpt_throughput.py --device cuda --precision bf16 --compile --configs gpt2 \
    --rounds 5 "$@"
python report.py
