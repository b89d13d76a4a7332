"""Is the data loader ever the bottleneck? Batches/s of the training batches drawn from the
token arrays (memmapped, or one copy in memory for a joined split: the IMDb bar's
train+val), against the training step that consumes them, in the same run.

    python benchmarks/bench_dataloader.py [--mirror DIR] [--out FILE.json]

For each quality-benchmark config (Tiny Shakespeare GPT: random windows; IMDb classifier:
shuffled, length-bucketed, padded reviews) a Trainer is built as training builds it; we time
its batch function alone over many indices, then whole training steps (which include
drawing their batch). The loader's share of a step must stay small.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from common import quality_config, write_result

from fromscratch.train.loop import Trainer


def per_second(fn, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mirror")
    parser.add_argument("--out")
    args = parser.parse_args()

    results = {}
    for name, batches, steps in (("shakespeare-char", 2000, 30), ("imdb-classifier", 500, 10)):
        config = quality_config(name, args.mirror, {"eval_splits": "", "max_steps": 10**6})
        with tempfile.TemporaryDirectory() as out:
            trainer = Trainer(config, out, progress_bar=False)
            trainer.train_step()  # warm-up: first-touch of the memmap pages, allocator
            loader = per_second(trainer.batches, batches)
            step = per_second(lambda _, t=trainer: t.train_step(), steps)
            trainer.tracker.close()
        results[name] = {
            "batch_size": config.batch_size,
            "loader_batches_per_s": loader,
            "train_steps_per_s": step,
            "loader_share_of_step": step / loader,
        }
        print(
            f"{name:<18} loader {loader:9,.0f} batches/s   training {step:7.1f} steps/s   "
            f"loader = {step / loader:.1%} of a step"
        )
    path = write_result("dataloader", {"results": results}, args.out)
    print(f"→ {path}")


if __name__ == "__main__":
    main()
