"""Sampling speed: tokens/s of GPT.generate with the KV cache, without it, and of Hugging
Face's `generate` on a GPT2LMHeadModel with the same sizes and the same weights.

    python benchmarks/bench_sampling.py [--rounds N] [--new-tokens N] [--out FILE.json]

Both models hold the same weights (HF's are mapped into ours with GPT.from_gpt2), so they
compute the same distribution; each generates `--new-tokens` tokens after a short prompt,
batch 1, top-k sampling, in eval mode under torch.inference_mode. Rounds alternate between
the three (after an untimed warm-up); the median tokens/s is reported. With a cache, a step
costs one token's forward pass; without, the whole window's (O(T) more work per token).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import paired_ratio, write_result

from fromscratch.models import GPT

SIZES = {  # the mid config of the training benchmark, a char-level vocabulary
    "mid": dict(n_layer=6, n_head=6, n_embd=384, n_positions=256, vocab_size=65),
}


def build_pair(size: dict) -> tuple[torch.nn.Module, GPT]:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(**size, bos_token_id=0, eos_token_id=0, pad_token_id=0)).eval()
    return hf, GPT.from_gpt2(hf).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=200)
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument("--out")
    args = parser.parse_args()

    hf, ours = build_pair(SIZES["mid"])
    prompt = torch.randint(0, 65, (1, args.prompt_tokens))
    n = args.new_tokens
    generators = {
        "ours (KV cache)": lambda: ours.generate(prompt, n, top_k=20, use_cache=True),
        "ours (no cache)": lambda: ours.generate(prompt, n, top_k=20, use_cache=False),
        "HF generate (KV cache)": lambda: hf.generate(
            prompt, max_new_tokens=n, min_new_tokens=n, do_sample=True, top_k=20, use_cache=True
        ),
    }
    rates = {name: [] for name in generators}
    with torch.inference_mode():
        for fn in generators.values():  # warm-up
            fn()
        for _ in range(args.rounds):
            for name, fn in generators.items():
                start = time.perf_counter()
                out = fn()
                assert out.shape[1] == args.prompt_tokens + n, out.shape
                rates[name].append(n / (time.perf_counter() - start))
    median = {name: statistics.median(r) for name, r in rates.items()}
    for name, rate in median.items():
        print(f"{name:<24}{rate:>10,.0f} tokens/s")
    cached = rates["ours (KV cache)"]
    vs_no_cache = paired_ratio(cached, rates["ours (no cache)"])
    vs_hf = paired_ratio(cached, rates["HF generate (KV cache)"])
    path = write_result(
        "sampling",
        {
            "config": {**SIZES["mid"], "prompt_tokens": args.prompt_tokens, "new_tokens": n},
            "settings": "batch 1, top-k 20 sampling, fp32, torch.inference_mode, eval mode",
            "tokens_per_s": median,
            "tokens_per_s_rounds": rates,
            "ratio_cache_vs_no_cache": vs_no_cache,
            "ratio_vs_hf_generate": vs_hf,
        },
        args.out,
    )
    print(
        f"KV cache ×{vs_no_cache:.2f} vs no cache, ×{vs_hf:.2f} vs HF generate (round by round) "
        f"→ {path}"
    )


if __name__ == "__main__":
    main()
