"""What the training loop costs beyond the bare step: `Trainer.train_step` against the same
model's forward, backward, gradient clipping and AdamW step on a batch already in place.

    python benchmarks/bench_train_loop.py [--device cuda --precision bf16] [--configs gpt2]

Beyond the bare step, the loop makes each step's batch from the token stream, copies it to
the device, reads the loss and the gradient norm back (to log them and to stop on a NaN),
and sets the learning rate.  On a GPU, each value read back makes the CPU wait for the GPU,
and a copy from ordinary (pageable) host memory waits for the work queued before it: the
GPU then idles while the CPU queues the next kernels.  Both run in the same process on the
same model and optimizer, in alternating rounds; the ratio is the median over rounds of the
loop's tokens/s over the bare step's in the same round.  The data: the demo corpus, as
characters (the sizes are the throughput benchmark's, its vocabulary this corpus's).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch
from bench_gpt_throughput import CONFIGS, STEPS_PER_ROUND, time_steps
from common import OUT, cpu_name, write_result

from fromscratch.data import prepare
from fromscratch.train import TrainConfig, Trainer
from fromscratch.train.loop import loss_fn


def demo_chars() -> Path:
    data = OUT / "data" / "demo-chars"
    if not (data / "meta.json").exists():
        prepare("demo", data, tokenizer="chars", progress=False)
    return data


def bench_config(name: str, args) -> dict:
    c = CONFIGS[name]
    config = TrainConfig.from_dict({
        "data": str(demo_chars()),
        "model": {"family": "gpt", "n_layer": c["n_layer"], "n_head": c["n_head"],
                  "n_embd": c["n_embd"], "context": c["context"], "dropout": 0.0,
                  "fast": True},
        "batch_size": c["batch"], "max_steps": 10**9, "warmup_steps": 0, "eval_splits": "",
        "device": args.device, "precision": args.precision, "compile": args.compile,
    })  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(config, scratch, progress_bar=False)
        x, y = (t.to(trainer.device) for t in trainer.batches(0))
        vocab_size = trainer.model.config.vocab_size

        def bare_step():
            trainer.optimizer.zero_grad(set_to_none=True)
            with trainer.autocast():
                loss = loss_fn(trainer.forward_model, (x, y), "gpt")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), config.grad_clip)
            trainer.optimizer.step()

        steps = {"loop": trainer.train_step, "bare step": bare_step}
        per_round = STEPS_PER_ROUND[name]
        tokens = c["batch"] * c["context"] * per_round
        for step in steps.values():  # warm-up (and, with --compile, compiling)
            time_steps(step, max(3, per_round // 2))
        rates = {label: [] for label in steps}
        for _ in range(args.rounds):
            for label, step in steps.items():
                rates[label].append(tokens / time_steps(step, per_round))
    ratio = statistics.median(a / b for a, b in zip(rates["loop"], rates["bare step"], strict=True))
    return {
        "config": {**c, "vocab_size": vocab_size},
        "steps_per_round": per_round,
        "tokens_per_s": {label: statistics.median(r) for label, r in rates.items()},
        "tokens_per_s_rounds": rates,
        "ratio_loop_vs_bare": ratio,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["small", "mid"], choices=list(CONFIGS))
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    results = {name: bench_config(name, args) for name in args.configs}
    device = torch.cuda.get_device_name() if args.device != "cpu" else cpu_name()
    print(f"{device}, {args.precision}{', compiled' if args.compile else ''}")
    for name, r in results.items():
        tps = r["tokens_per_s"]
        print(f"{name:<7} loop {tps['loop']:>10,.0f} tok/s, bare step {tps['bare step']:>10,.0f}"
              f" tok/s: x{r['ratio_loop_vs_bare']:.3f}")  # fmt: skip
    usual = "fp32" if args.device == "cpu" else "bf16"  # as gpt_throughput's names
    suffix = "".join(
        f"-{part}" for part, on in ((args.device, args.device != "cpu"),
                                    (args.precision, args.precision != usual),
                                    ("compile", args.compile)) if on
    )  # fmt: skip
    report = {
        "cpu": cpu_name(),
        "device": device,
        "settings": {"precision": args.precision, "compile": args.compile, "rounds": args.rounds},
        "results": results,
    }
    print(f"→ {write_result('train_loop' + suffix, report, args.out)}")


if __name__ == "__main__":
    main()
