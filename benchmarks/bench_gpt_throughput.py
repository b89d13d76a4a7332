"""Training throughput of fromscratch's GPT against Hugging Face's GPT2LMHeadModel.

    python benchmarks/bench_gpt_throughput.py [--rounds N] [--compile] [--out FILE.json]
    python benchmarks/bench_gpt_throughput.py --precision bf16    # bf16 autocast on the CPU
    python benchmarks/bench_gpt_throughput.py --device cuda --precision bf16 --compile \
        --configs gpt2    # on a GPU: GPT-2 small's size, context 1024
    python benchmarks/bench_gpt_throughput.py --nanogpt ~/nanoGPT   # + nanoGPT's model.py

One training step = forward + cross-entropy + backward + AdamW step, fp32, the same for
both models: the same random batch, context, vocabulary, sizes, dropout 0, and the same
optimizer (torch AdamW, betas (0.9, 0.95), weight decay 0.1 on >= 2-D tensors, fused
kernel unless --no-fused).  Hugging Face gets its fastest attention (sdpa or eager,
timed here first) and `use_cache=False`.  Rounds alternate between the models (ours, HF,
ours, HF, ...) after an untimed warm-up, so a change in machine load hits both; we report
the median tokens/s over rounds, and as the ratio the median over rounds of each round's
ours / HF.  Rounds are short (half a second to a second) and many: on a shared virtual
machine the speed drifts by 10-20% within a minute, and short alternating rounds keep the
two models under the same conditions.

MFU = model FLOPs per token (nanoGPT's 6N + 12 L H Q T) x tokens/s / the matmul FLOP/s
this device reaches at that moment at the training precision (a square torch.mm loop,
timed in every round right after the models; bf16 under --precision bf16, where both
models run under bf16 autocast); the median over rounds.  Each round also times a copy of
a tensor larger than any cache: the memory bandwidth that the step's elementwise ops
(GELU, LayerNorm, adds, bias fills) are bound by.  How much they cost next to the matmuls
is this machine's ratio of the two rates, and HF's step has more of them than ours: so
the ratio to HF moves with the machine.

In fp32 on a CPU (and with fast=True) the result also says whether the speed goals (GOALS)
are met.

--nanogpt DIR adds nanoGPT's own model.py (from DIR, a clone of github.com/karpathy/nanoGPT)
to the same rounds, with the same sizes, biases and optimizer: the speed goals are stated
against nanoGPT's ratio to HF, and that ratio moves with the machine (with how fast it runs
elementwise work next to its matmuls, and HF has more of it), so both are best measured
side by side.

--no-bias builds ours (and nanoGPT) without biases, as nanoGPT's train.py does by default
(its CPU Shakespeare configuration keeps that default); HF's GPT-2 always has them.  The
default run keeps biases on both sides, parameter for parameter the same model as HF.  A
run that changes ours (--no-bias, --plain, --no-fused) is its own result, so it never
replaces the default one.

Where the time goes: after the timed rounds, a few steps of ours and of HF run under
torch.profiler, alternating, three times each; each op's own time falls into matrix
multiplies, the fused attention kernel, the optimizer, or the rest (elementwise ops,
LayerNorm, copies, autograd), plus Python between ops.  Scaled to the unprofiled step time
and the median taken, this gives ms per step for each, and `matmul_bound_ratio` (the median
over the alternating pairs): HF's step time over ours with everything but the matrix
multiplies and the attention kernel free, about the most that work on the rest of the
step (fusing, fewer ops, less Python) could gain at that size on this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import (
    cpu_name,
    measure_memory_bandwidth,
    paired_ratio,
    throughput_goal_text,
    write_result,
)

from fromscratch.models import GPT, GPTConfig, measure_matmul_flops

CONFIGS = {
    # nanoGPT's CPU Shakespeare-char config (README "I only have a macbook")
    "small": dict(n_layer=4, n_head=4, n_embd=128, context=64, batch=12, vocab_size=65),
    "mid": dict(n_layer=6, n_head=6, n_embd=384, context=256, batch=8, vocab_size=65),
    # GPT-2 small's shape, for a GPU
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768, context=1024, batch=16, vocab_size=50304),
}
STEPS_PER_ROUND = {"small": 10, "mid": 1, "gpt2": 10}
# the speed goals, for fp32 training on a CPU: ours' tokens/s as a multiple of HF's in the
# same rounds, and at mid also ours' MFU
GOALS = {"small": {"ratio_vs_hf": 1.5}, "mid": {"ratio_vs_hf": 1.25, "mfu": 0.85}}
BREAKDOWN_ROUNDS = 3
ROUNDS = 21  # fewer: a try, which says nothing of the goals and keeps a file of its own


def adamw(model: torch.nn.Module, fused: bool) -> torch.optim.AdamW:
    """The one optimizer both models get (GPT.configure_optimizer does the same)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=3e-4, betas=(0.9, 0.95), fused=fused)


def build_ours(c: dict, args, **overrides) -> torch.nn.Module:
    config = dict(
        vocab_size=c["vocab_size"], context=c["context"], n_layer=c["n_layer"],
        n_head=c["n_head"], n_embd=c["n_embd"], dropout=0.0, bias=not args.no_bias,
        attention="multihead", position="learned", norm="pre", activation="gelu",
        fast=not args.plain, tie_weights=True,
    )  # fmt: skip
    return GPT(GPTConfig(**{**config, **overrides}))


# --levers: one change at a time to `ours`, timed in the same interleaved rounds
LEVERS = {
    "ours fast=False": dict(fast=False),
    "ours gelu_tanh": dict(activation="gelu_tanh"),
    "ours bias=False": dict(bias=False),
    "ours untied": dict(tie_weights=False),
    "ours foreach AdamW": dict(fused=False),
}


# HF's GELU: GPT-2's own (its default, the goals' peer) is the tanh approximation written
# as seven elementwise ops; "gelu_pytorch_tanh" is the same function as one fused kernel
HF_GELU, HF_FUSED_GELU = "gelu_new", "gelu_pytorch_tanh"


def build_hf(c: dict, attn_implementation: str, gelu: str = HF_GELU) -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=c["vocab_size"], n_positions=c["context"], n_embd=c["n_embd"],
        n_layer=c["n_layer"], n_head=c["n_head"], resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, use_cache=False, attn_implementation=attn_implementation,
        activation_function=gelu,
        bos_token_id=0, eos_token_id=0,  # GPT-2's 50256 lies outside this small vocabulary
    )  # fmt: skip
    return GPT2LMHeadModel(config)


def load_nanogpt(directory: Path):
    """nanoGPT's model.py from `directory`, as a module (GPT, GPTConfig)."""
    path = Path(directory).expanduser() / "model.py"
    if not path.is_file():
        raise SystemExit(
            f"--nanogpt: no {path}; pass a clone of https://github.com/karpathy/nanoGPT"
        )
    spec = importlib.util.spec_from_file_location("nanogpt_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_nanogpt(c: dict, nanogpt, bias: bool) -> torch.nn.Module:
    config = nanogpt.GPTConfig(
        block_size=c["context"], vocab_size=c["vocab_size"], n_layer=c["n_layer"],
        n_head=c["n_head"], n_embd=c["n_embd"], dropout=0.0, bias=bias,
    )  # fmt: skip
    return nanogpt.GPT(config)


def make_step(model, loss_of, optimizer, x, y, bf16=False):
    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(x.device.type, torch.bfloat16, enabled=bf16):
            loss = loss_of(model, x, y)
        loss.backward()
        optimizer.step()

    return step


def sync() -> None:
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()


def cross_entropy(logits, y):
    # in fp32 under autocast too (autocast runs cross_entropy in fp32 by itself)
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.view(-1))


def ours_loss(model, x, y):
    return cross_entropy(model(x), y)


def hf_loss(model, x, y):
    return cross_entropy(model(input_ids=x, use_cache=False).logits, y)


def nanogpt_loss(model, x, y):
    return model(x, targets=y)[1]  # its own cross-entropy, the same as the others'


HF_FUSED_LABEL = f"hf {HF_FUSED_GELU}"


def peer_of(label: str) -> str:
    """What a variant is compared with: compiled against compiled, the rest against HF."""
    return "hf+compile" if label.endswith("+compile") else "hf"


def time_steps(step, n: int) -> float:
    sync()
    start = time.perf_counter()
    for _ in range(n):
        step()
    sync()
    return time.perf_counter() - start


# profiler op names -> the share of a step they stand for (the first match counts)
OP_KINDS = {
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"),
    "attention kernel": ("scaled_dot_product",),
    "optimizer": ("adam", "Optimizer."),
}


@contextlib.contextmanager
def native_stderr_silenced():
    """The profiler's C++ side writes a line to stderr as it starts and as it stops, and no
    setting turns that off: the report would drown in them."""
    sys.stderr.flush()
    kept, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(kept, 2)
        os.close(kept)
        os.close(devnull)


def time_breakdown(step, n: int) -> dict[str, float]:
    """ms per step in each of OP_KINDS, "other ops", and "python" (between ops)."""
    from torch.profiler import ProfilerActivity, profile

    wall = time_steps(step, n)  # unprofiled: the profiler slows every op down a little
    with native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU]) as prof:
        profiled_wall = time_steps(step, n)
    seconds = dict.fromkeys([*OP_KINDS, "other ops"], 0.0)
    for op in prof.key_averages():
        kind = next((k for k, names in OP_KINDS.items() if any(s in op.key for s in names)),
                    "other ops")  # fmt: skip
        seconds[kind] += op.self_cpu_time_total / 1e6
    seconds["python"] = max(0.0, profiled_wall - sum(seconds.values()))
    return {kind: 1e3 * s / n * wall / profiled_wall for kind, s in seconds.items()}


def fastest_hf_attention(c, x, y, fused, bf16) -> tuple[str, dict[str, float]]:
    """Time HF's sdpa and eager attention briefly; the benchmark then uses the faster."""
    seconds = {}
    for impl in ("sdpa", "eager"):
        model = build_hf(c, impl).to(x.device).train()
        step = make_step(model, hf_loss, adamw(model, fused), x, y, bf16)
        time_steps(step, 2)
        seconds[impl] = min(time_steps(step, max(1, STEPS_PER_ROUND[c["name"]] // 2))
                            for _ in range(2))  # fmt: skip
    return min(seconds, key=seconds.get), seconds


def bench_config(name: str, args, matmul_rate, memory_rate, nanogpt=None) -> dict:
    """matmul_rate(), memory_rate(): the device's matmul FLOP/s and memory bytes/s now,
    timed briefly.  nanogpt: its model.py."""
    c = {**CONFIGS[name], "name": name}
    torch.manual_seed(0)
    x = torch.randint(0, c["vocab_size"], (c["batch"], c["context"]), device=args.device)
    y = torch.randint(0, c["vocab_size"], (c["batch"], c["context"]), device=args.device)
    fused, bf16 = not args.no_fused, args.precision == "bf16"
    hf_attention, hf_attention_seconds = fastest_hf_attention(c, x, y, fused, bf16)

    variants = {}  # name -> step function
    ours = build_ours(c, args).to(args.device).train()
    hf = build_hf(c, hf_attention).to(args.device).train()
    # each model's training FLOPs per token, from its own parameters: HF keeps GPT-2's
    # biases where ours may not (--no-bias), and ours with them counts what HF's does
    flops_per_token = {
        "ours": ours.estimate_flops_per_token(),
        "hf": build_ours(c, args, bias=True).estimate_flops_per_token(),
    }
    variants["ours"] = make_step(ours, ours_loss, adamw(ours, fused), x, y, bf16)
    variants["hf"] = make_step(hf, hf_loss, adamw(hf, fused), x, y, bf16)
    # the same HF model with GPT-2's GELU as one kernel: how much of the ratio is HF's GELU
    hf_fused = build_hf(c, hf_attention, gelu=HF_FUSED_GELU).to(args.device).train()
    variants[HF_FUSED_LABEL] = make_step(hf_fused, hf_loss, adamw(hf_fused, fused), x, y, bf16)
    flops_per_token[HF_FUSED_LABEL] = flops_per_token["hf"]
    if nanogpt is not None:
        model = build_nanogpt(c, nanogpt, bias=not args.no_bias).to(args.device).train()
        variants["nanogpt"] = make_step(model, nanogpt_loss, adamw(model, fused), x, y, bf16)
        flops_per_token["nanogpt"] = flops_per_token["ours"]  # the same model, op for op
    for label, overrides in LEVERS.items() if args.levers else ():
        overrides = dict(overrides)
        lever_fused = overrides.pop("fused", fused)
        model = build_ours(c, args, **overrides).to(args.device).train()
        flops_per_token[label] = model.estimate_flops_per_token()
        variants[label] = make_step(model, ours_loss, adamw(model, lever_fused), x, y, bf16)
    compile_seconds, compile_errors = {}, {}
    if args.compile:
        for label, build, loss_of in (
            ("ours+compile", lambda: build_ours(c, args), ours_loss),
            ("hf+compile", lambda: build_hf(c, hf_attention), hf_loss),
        ):
            model = build().to(args.device).train()
            compiled = torch.compile(model)
            step = make_step(compiled, loss_of, adamw(model, fused), x, y, bf16)
            start = time.perf_counter()
            try:
                step()  # compiles forward and backward
            except Exception as error:  # the eager results still count
                compile_errors[label] = f"{type(error).__name__}: {error}"[:500]
                print(f"{label}: torch.compile failed, left out: {compile_errors[label]}")
                continue
            compile_seconds[label] = time.perf_counter() - start
            variants[label] = step
            flops_per_token[label] = flops_per_token[label.removesuffix("+compile")]
        if "hf+compile" not in variants:  # nothing to pair ours+compile with
            variants.pop("ours+compile", None)

    steps = STEPS_PER_ROUND[name]
    tokens_per_step = c["batch"] * c["context"]
    for step in variants.values():  # warm-up, not timed
        time_steps(step, max(2, steps // 2))
    rates, peak, bandwidth = {label: [] for label in variants}, [], []
    for _ in range(args.rounds):  # interleaved: ours, hf, (ours+compile, hf+compile), ours...
        for label, step in variants.items():
            rates[label].append(tokens_per_step * steps / time_steps(step, steps))
        peak.append(matmul_rate())
        bandwidth.append(memory_rate())

    # on a GPU an op's CPU time is its launch, not its work: the breakdown is for CPUs
    breakdown, bound_ratio = None, None
    if args.device == "cpu":
        profiled = {"ours": [], "hf": []}
        for _ in range(BREAKDOWN_ROUNDS):  # alternating, as the timed rounds
            for label, runs in profiled.items():
                runs.append(time_breakdown(variants[label], max(3, steps)))
        breakdown = {
            label: {kind: statistics.median(run[kind] for run in runs) for kind in runs[0]}
            for label, runs in profiled.items()
        }
        # HF's whole step over ours' matmuls and attention kernel, profiled side by side
        bound_ratio = statistics.median(
            sum(hf.values()) / (ours["matmul"] + ours["attention kernel"])
            for ours, hf in zip(profiled["ours"], profiled["hf"], strict=True)
        )
    median = {label: statistics.median(r) for label, r in rates.items()}

    ratio_vs_peer = {label: paired_ratio(rates[label], rates[peer_of(label)]) for label in rates}
    mfu = {
        label: statistics.median(
            flops_per_token[label] * r / p for r, p in zip(rs, peak, strict=True)
        )
        for label, rs in rates.items()
    }
    achieved = {"ratio_vs_hf": ratio_vs_peer["ours"], "mfu": mfu["ours"]}
    goal = None
    the_run = args.device == "cpu" and args.precision == "fp32" and args.rounds >= ROUNDS
    if the_run and not args.plain and name in GOALS:
        goal = {
            kind: {"goal": bar, "met": achieved[kind] >= bar} for kind, bar in GOALS[name].items()
        }
    return {
        "config": {k: v for k, v in c.items() if k != "name"},
        "parameters": {"ours": ours.num_parameters(), "hf": hf.num_parameters()},
        "hf_attention": hf_attention,
        "hf_attention_seconds": hf_attention_seconds,
        "compile_seconds": compile_seconds,
        "compile_errors": compile_errors,
        "steps_per_round": steps,
        "flops_per_token": flops_per_token,
        "tokens_per_s": median,
        "tokens_per_s_rounds": rates,
        "ratio_vs_peer": ratio_vs_peer,
        "ratio_of_medians": median["ours"] / median["hf"],
        "ratio_ours_vs_nanogpt": paired_ratio(rates["ours"], rates["nanogpt"])
        if "nanogpt" in rates
        else None,
        "ratio_ours_vs_hf_fused_gelu": paired_ratio(rates["ours"], rates[HF_FUSED_LABEL]),
        "mfu": mfu,
        "goal": goal,
        "matmul_gflops_rounds": [p / 1e9 for p in peak],
        "memory_gbps_rounds": [b / 1e9 for b in bandwidth],
        "ms_per_step": breakdown,
        "matmul_bound_ratio": bound_ratio,
        "ratio_compiled_vs_hf_eager": paired_ratio(rates["ours+compile"], rates["hf"])
        if "ours+compile" in rates
        else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS, help="timed rounds per model (default: %(default)s)"
    )
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd models")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--configs", nargs="+", default=["small", "mid"], choices=list(CONFIGS))
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--plain", action="store_true", help="ours with fast=False")
    parser.add_argument("--no-bias", action="store_true", help="ours (and nanoGPT) without biases")
    parser.add_argument("--no-fused", action="store_true", help="foreach AdamW for both")
    parser.add_argument("--levers", action="store_true", help="also time one change at a time")
    parser.add_argument("--nanogpt", type=Path, help="also time model.py of this nanoGPT clone")
    args = parser.parse_args()

    load_before = os.getloadavg()
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    size = 1024 if args.device == "cpu" else 8192  # a GPU nears its peak only this large

    def matmul_rate():
        return measure_matmul_flops(size, seconds=0.3, dtype=dtype, device=args.device)

    def memory_rate():
        return measure_memory_bandwidth(device=args.device)

    nanogpt = load_nanogpt(args.nanogpt) if args.nanogpt else None  # fail before timing
    results = {
        name: bench_config(name, args, matmul_rate, memory_rate, nanogpt) for name in args.configs
    }
    matmul = [rate for r in results.values() for rate in r["matmul_gflops_rounds"]]
    memory = [rate for r in results.values() for rate in r["memory_gbps_rounds"]]
    report = {
        "torch": torch.__version__,
        "cpu": cpu_name(),
        "device": torch.cuda.get_device_name() if args.device != "cpu" else cpu_name(),
        "threads": torch.get_num_threads(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "matmul_gflops": statistics.median(matmul),
        # what elementwise work costs next to matmuls: HF's step has more of it than ours
        "memory_gbps": statistics.median(memory),
        "settings": {
            "dtype": "float32" if args.precision == "fp32" else "bfloat16 autocast",
            "bias": not args.no_bias,
            "optimizer": "torch.optim.AdamW(lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1 on "
            f">=2-D, fused={not args.no_fused}) for both",
            "ours": f"GPT(fast={not args.plain}, bias={not args.no_bias}, tie_weights=True, "
            "position=learned, dropout=0)",
            "hf": f"GPT2LMHeadModel(random init, dropout 0, use_cache=False, "
            f"activation_function={HF_GELU!r}: GPT-2's own, its default); also timed with "
            f"{HF_FUSED_GELU!r}, the same function as one kernel",
            "ours_activation": "exact GELU (erf), one kernel",
            "nanogpt": f"model.py of {args.nanogpt} (bias={not args.no_bias}, dropout 0)"
            if args.nanogpt
            else None,
            "rounds": args.rounds,
            "interleaved": True,
            "statistic": "median tokens/s over rounds, warm-up excluded; ratio: median over "
            "rounds of ours / peer in the same round",
        },
        "results": results,
    }

    print(
        f"torch {report['torch']}, {report['device']}, {report['threads']} threads, "
        f"load {load_before[0]:.2f}, {args.precision} matmul {report['matmul_gflops']:.0f} "
        f"GFLOP/s, memory {report['memory_gbps']:.1f} GB/s"
    )
    print(f"{'config':<7}{'model':<20}{'tokens/s':>10}{'x HF':>7}{'MFU':>7}")
    for name, r in results.items():
        for label, tps in r["tokens_per_s"].items():
            ratio, mfu = r["ratio_vs_peer"][label], r["mfu"][label]
            print(f"{name:<7}{label:<20}{tps:>10,.0f}{ratio:>7.2f}{mfu:>7.0%}")
        print(
            f"{'':<7}(HF attention: {r['hf_attention']}; "
            f"ratio of the medians {r['ratio_of_medians']:.2f})"
        )
        if r["goal"]:
            print(f"{'':<7}(goal {throughput_goal_text(r['goal'])})")
        if r["ratio_ours_vs_nanogpt"]:
            print(f"{'':<7}(ours / nanoGPT: x{r['ratio_ours_vs_nanogpt']:.2f})")
        print(f"{'':<7}(ours / HF with its GELU fused: x{r['ratio_ours_vs_hf_fused_gelu']:.2f})")
        if r["ms_per_step"]:
            for label, ms in r["ms_per_step"].items():
                parts = ", ".join(f"{kind} {t:.1f}" for kind, t in ms.items())
                print(f"{'':<7}{label} ms/step: {parts}")
            print(f"{'':<7}(with only matmuls and attention left: x{r['matmul_bound_ratio']:.2f})")
    print(f"→ {write_result(result_name(args), report, args.out)}")


def result_name(args) -> str:
    """One result per device, precision and variant of ours: gpt_throughput[-cuda][-bf16]..."""
    name = "gpt_throughput"
    if args.device != "cpu":
        name += f"-{args.device}"
    if args.precision != ("fp32" if args.device == "cpu" else "bf16"):  # not the usual one
        name += f"-{args.precision}"
    # a run that changes ours, or times other models between ours and HF, or fewer rounds,
    # is a result of its own: never the one the goals are read from
    changes = {
        "nobias": args.no_bias,
        "plain": args.plain,
        "foreach": args.no_fused,
        "levers": args.levers,
        "nanogpt": args.nanogpt,
        "short": args.rounds < ROUNDS,
    }
    for suffix, changed in changes.items():
        if changed:
            name += f"-{suffix}"
    return name


if __name__ == "__main__":
    main()
