"""benchmarks/RESULTS.md from the JSON results in benchmarks/results/: one table, each row our
number, the peer's number measured in the same run, and the ratio, with the machine and
date of the run that produced it.

    python benchmarks/report.py [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from common import HERE, RESULTS, throughput_goal_text

from fromscratch.io import write_text


def rows_tokenizers(r: dict) -> list[tuple]:
    rows = []
    names = {"gpt2": "GPT-2 BPE", "words": "word-level (incl. fitting the vocabulary)"}
    for name, result in r["results"].items():
        for peer, p in result["peers"].items():
            rows.append((
                f"tokeniser: {names[name]}, {r['reviews']:,} IMDb reviews ({r['megabytes']} MB)",
                f"{result['MB_per_s']:.2f} MB/s ({result['seconds']:.1f} s)",
                peer,
                f"{p['MB_per_s']:.2f} MB/s ({p['seconds']:.1f} s)",
                p["ours_speedup"],
            ))  # fmt: skip
    return rows


def rows_throughput(r: dict) -> list[tuple]:
    rows = []
    precision = r["settings"]["dtype"]
    if not r["settings"].get("bias", True):
        precision += ", no biases (nanoGPT's default; HF keeps GPT-2's)"
    if "fast=False" in r["settings"]["ours"]:
        precision += ", ours without the fused attention kernel (fast=False)"
    if "fused=False" in r["settings"]["optimizer"]:
        precision += ", AdamW's for-each kernels (not fused)"
    for name, c in r["results"].items():
        size = c["config"]
        shape = (
            f"{size['n_layer']} layers, {size['n_embd']} wide, context {size['context']}, "
            f"batch {size['batch']}"
        )
        tps, mfu = c["tokens_per_s"], c["mfu"]
        ratios = c["ratio_vs_peer"]
        default = "HF GPT2LMHeadModel (GPT-2's GELU, gelu_new: its default)"
        pairs = [("ours", "hf", default, ratios["ours"])]
        if "ours+compile" in tps:
            pairs.append(("ours+compile", "hf+compile", "HF GPT2LMHeadModel + torch.compile",
                          ratios["ours+compile"]))  # fmt: skip
        if "nanogpt" in tps:
            pairs.append(("ours", "nanogpt", f"nanoGPT's model.py (×{ratios['nanogpt']:.2f} HF)",
                          c["ratio_ours_vs_nanogpt"]))  # fmt: skip
        fused = next((label for label in tps if label.startswith("hf gelu")), None)
        if fused:  # results before 2026-12-06 lack it
            pairs.append(("ours", fused, "HF GPT2LMHeadModel, its GELU as one kernel "
                          f"({fused.removeprefix('hf ')})",
                          c["ratio_ours_vs_hf_fused_gelu"]))  # fmt: skip
        goal = c.get("goal")  # for the plain comparison with HF
        for ours, peer, peer_name, ratio in pairs:
            rows.append((
                f"GPT training tokens/s, {name} ({shape}), {precision}"
                + (", torch.compile" if "compile" in ours else "")
                + (f" (goal {throughput_goal_text(goal)})" if goal and peer == "hf" else ""),
                f"{tps[ours]:,.0f} tok/s (MFU {mfu[ours]:.0%})",
                peer_name,
                f"{tps[peer]:,.0f} tok/s (MFU {mfu[peer]:.0%})",
                ratio,
            ))  # fmt: skip
        if c.get("ms_per_step"):
            ms = {who: ", ".join(f"{kind} {t:.1f}" for kind, t in parts.items())
                  for who, parts in c["ms_per_step"].items()}  # fmt: skip
            rates = f"matmul {statistics.median(c['matmul_gflops_rounds']):.0f} GFLOP/s"
            if c.get("memory_gbps_rounds"):  # results before 2026-12-03 lack it
                rates += f", memory {statistics.median(c['memory_gbps_rounds']):.1f} GB/s"
            rows.append((
                f"GPT training step, {name}: where the time goes, ms/step (profiled; with only "
                f"its matmuls and attention kernel left, ours would be "
                f"×{c['matmul_bound_ratio']:.2f} HF; this machine: {rates})",
                ms["ours"], "HF GPT2LMHeadModel", ms["hf"], None,
            ))  # fmt: skip
    return rows


def rows_sampling(r: dict) -> list[tuple]:
    tps, c = r["tokens_per_s"], r["config"]
    what = (
        f"sampling tokens/s, {c['n_layer']} layers, {c['n_embd']} wide, "
        f"{c['new_tokens']} new tokens, batch 1"
    )
    ours = f"{tps['ours (KV cache)']:,.0f} tok/s (KV cache)"
    return [
        (what, ours, "ours without the cache", f"{tps['ours (no cache)']:,.0f} tok/s",
         r["ratio_cache_vs_no_cache"]),
        (what, ours, "HF generate (KV cache)", f"{tps['HF generate (KV cache)']:,.0f} tok/s",
         r["ratio_vs_hf_generate"]),
    ]  # fmt: skip


def rows_train_loop(r: dict) -> list[tuple]:
    rows = []
    for name, x in r["results"].items():
        c, tps = x["config"], x["tokens_per_s"]
        what = (
            f"training loop (Trainer.train_step) vs the bare step, {name} ({c['n_layer']} "
            f"layers, {c['n_embd']} wide, context {c['context']}, batch {c['batch']}), "
            f"{r['settings']['precision']}"
            + (", torch.compile" if r["settings"]["compile"] else "")
        )
        rows.append((what, f"{tps['loop']:,.0f} tok/s", "forward, backward, clip, AdamW alone",
                     f"{tps['bare step']:,.0f} tok/s", x["ratio_loop_vs_bare"]))  # fmt: skip
    return rows


def rows_dataloader(r: dict) -> list[tuple]:
    return [
        (
            f"data loader vs training step, {name} (batch {x['batch_size']})",
            f"{x['loader_batches_per_s']:,.0f} batches/s",
            "training steps",
            f"{x['train_steps_per_s']:,.1f} steps/s",
            x["loader_batches_per_s"] / x["train_steps_per_s"],
        )
        for name, x in r["results"].items()
    ]


def rows_workflow(r: dict) -> list[tuple]:
    jobs = r["job_seconds"]
    startup = r["snakemake_version_s"]
    return [
        (
            f"Snakemake dry run of the full DAG ({r['full_dag_jobs']} jobs)",
            f"{r['dry_run_s']:.1f} s ({r['dry_run_s'] - startup:.1f} s beyond startup)",
            "snakemake --version (startup)",
            f"{startup:.1f} s",
            None,
        ),
        (
            "one local job through the launcher (demo `prepare` stage)",
            f"{jobs['fromscratch run --launcher local']:.1f} s, of which "
            f"{jobs['in process (function call)']:.1f} s the stage itself",
            'python -c "import torch"',
            f"{r['python_torch_import_s']:.1f} s",
            None,
        ),
        (
            "one demo training job (classifier, 20 steps, W&B offline)",
            f"{r['training_job_s']:.1f} s",
            "the same, ending as Python does by default",
            f"{r['training_job_default_exit_s']:.1f} s",
            r["training_job_default_exit_s"] / r["training_job_s"],
        ),
    ]


def rows_quality(r: dict) -> list[tuple]:
    reference = {
        "quality-shakespeare": ("nanoGPT's CPU recipe (1.886 after ~90 s)", "1.886"),
        "quality-imdb": ("TF-IDF bigrams + logistic regression (24 s)", "0.906"),
    }[r["benchmark"]]
    return [
        (
            f"{r['benchmark']}: {r['metric']} (goal {r['goal']})"
            + (f", trained on {split}" if (split := r["config"]["train_split"]) != "train" else ""),
            f"{r['value']:.4f} after {r['train_time_s']:.0f} s, {r['steps']} steps"
            + "".join(f"; {metric} {value:.4f}" for metric, value in r.get("also", {}).items()),
            reference[0] + "; reference, not the same run",
            reference[1],
            None,
        )
    ]


def grid_lrs(r: dict) -> list[float]:
    """The grid's LRs (results before `grid` was kept: every run but the range test's)."""
    return r.get("grid") or [x["lr"] for x in r["runs"].values() if not x["chosen_by_range_test"]]


def rows_lr_grid(r: dict) -> list[tuple]:
    return [
        (
            "LR range test vs grid, Tiny Shakespeare, "
            + (
                f"{r['steps']} steps per run (what {r['budget_s']:.0f} s fit)"
                if "steps" in r  # a result from before every run had the same steps
                else f"{r['budget_s']:.0f} s per run"
            ),
            f"lr {r['range_test_lr']:.2g}: val loss {r['range_test_val_loss']:.3f}",
            "best of the grid " + ", ".join(f"{lr:.0e}" for lr in grid_lrs(r)),
            f"lr {r['best_grid_lr']:.2g}: val loss {r['best_val_loss']:.3f}",
            None,
        )
    ]


ROWS = {  # benchmark name (JSON file stem) -> its table rows, in the table's order
    "gpt_throughput": rows_throughput,
    "gpt_throughput-nobias": rows_throughput,
    "gpt_throughput-bf16": rows_throughput,
    "gpt_throughput-cuda": rows_throughput,
    "sampling": rows_sampling,
    "tokenizers": rows_tokenizers,
    "dataloader": rows_dataloader,
    "train_loop": rows_train_loop,
    "train_loop-cuda": rows_train_loop,
    "workflow": rows_workflow,
    "quality-shakespeare": rows_quality,
    "quality-imdb": rows_quality,
    "lr-grid": rows_lr_grid,
}


def cpu_text(m: dict) -> str:
    isa = f", {m['vector_isa']}" if "vector_isa" in m else ""
    return f"{m['cpu']} ({m['cores']} cores{isa})"


def gpu_of(result: dict) -> str | None:
    """The GPU a benchmark ran on (its "device", where that is not the CPU), or None."""
    device = result.get("device")
    return device if device and device != result.get("cpu") else None


def machine_text(result: dict) -> str:
    m, gpu = result["machine"], gpu_of(result)
    on = f"{gpu} with " if gpu else ""
    return f"{on}{cpu_text(m)}, Python {m['python']}, torch {m['torch']}"


def render(results: dict[str, dict]) -> str:
    machines = sorted({machine_text(r) for r in results.values()})
    lines = [
        "# Benchmark results",
        "",
        "Made by `make bench` (`python benchmarks/run.py`) from `benchmarks/results/*.json`; each",
        "row's peer was measured in the same run as ours (interleaved, round by round, where a",
        "benchmark repeats; the tokenisers time each side once, one after the other),",
        "except where a row says *reference*. Ratio: ours ÷ peer as rates (higher is",
        "better for us; for GPT training, the median over rounds of the ratio within a round);",
        "each row's run date (and machine, where the rows come from several) is in its last",
        "column. What the numbers mean, and what was tried to move them:",
        "[README.md](README.md).",
        "",
        "Machines:",
        *[f"- {m}" for m in machines],
        "",
        "| benchmark | ours | peer | peer's | ratio | run |",
        "|---|---|---|---|---|---|",
    ]
    for name in sorted(results, key=table_order):
        make_rows = rows_of(name)
        when = results[name]["machine"]["date"]
        if len(machines) > 1:
            when = f"{cpu_text(results[name]['machine'])}, {when}"
        if gpu := gpu_of(results[name]):
            when = f"{gpu}, {when}"
        for what, ours, peer, theirs, ratio in make_rows(results[name]):
            ratio_text = f"×{ratio:.2f}" if ratio is not None else "—"
            lines.append(f"| {what} | {ours} | {peer} | {theirs} | {ratio_text} | {when} |")
    missing = [name for name in ROWS if name not in results]
    if missing:
        lines += ["", f"Not run yet: {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


def rows_of(name: str):
    """The rows function of result `name`: its own, or its benchmark's for a variant run
    (gpt_throughput-plain, train_loop-cuda-compile: the name's first part); None if neither."""
    return ROWS.get(name) or ROWS.get(name.split("-")[0])


def table_order(name: str) -> tuple[int, str]:
    """ROWS' order; a variant run after the results of its benchmark that ROWS names."""
    names = list(ROWS)
    if name in ROWS:
        return names.index(name), ""
    family = name.split("-")[0]
    return max(i for i, known in enumerate(names) if known.split("-")[0] == family), name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    results, unknown = {}, []
    for path in sorted(RESULTS.glob("*.json")):
        if rows_of(path.stem) is None:
            unknown.append(path.name)
        else:
            results[path.stem] = json.loads(path.read_text())
    if unknown:
        print(f"not in the table (no benchmark of that name): {', '.join(unknown)}")
    write_text(args.out, render(results))
    print(f"{len(results)} benchmarks → {args.out}")


if __name__ == "__main__":
    main()
