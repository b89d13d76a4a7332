"""`fromscratch ...`: the command each pipeline step calls, and the one users type.

Every failure the user can fix ends the command with exit code 1 and one line on stderr
that names what is wrong (and, where there is a choice, what is allowed).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import sys
from pathlib import Path

from fromscratch import (
    FromScratchError,
    Interrupted,
    __version__,
    exit_on_termination,
    leave_objects_to_the_os_at_exit,
)
from fromscratch.config import is_of_type


def cmd_data_prepare(args: argparse.Namespace) -> None:
    from fromscratch.data import prepare

    meta = prepare(
        args.name,
        args.out,
        mirror=args.mirror,
        tokenizer=args.tokenizer,
        tokenizer_from=args.tokenizer_from,
        vocab_size=args.vocab_size,
        fit_on=args.fit_on,
        cache_dir=args.cache,
        seed=args.seed,
        progress=not args.quiet,
    )
    sizes = ", ".join(
        f"{name}: {s['examples']:,} examples / {s['tokens']:,} tokens"
        for name, s in meta["splits"].items()
    )
    vocabulary = f"{meta['tokenizer']}, vocabulary {meta['vocab_size']:,}"
    print(f"{args.name} → {args.out} ({vocabulary}); {sizes}")


def cmd_data_list(args: argparse.Namespace) -> None:
    from fromscratch.data import DATASETS

    for d in DATASETS.values():
        print(f"{d.name:20s} {d.task:15s} {d.description}")


def parse_overrides(pairs: list[str]) -> dict:
    """--set key=value pairs; values are read as YAML (numbers, booleans, mappings), and an
    empty one means the key's default."""
    from fromscratch.io import parse_yaml

    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise FromScratchError(f"--set {pair!r}: expected KEY=VALUE")
        if "" in key.split("."):
            raise FromScratchError(
                f"--set {pair!r}: a KEY with an empty name in it; e.g. lr=1e-3, model.n_head=8"
            )
        out[key] = parse_yaml(value, f"--set {pair!r}")
    return out


def _config(args: argparse.Namespace):
    from fromscratch.train import load_config

    _check_out_folder(args.out)
    return load_config(args.config, parse_overrides(args.set))


def _check_folder(path: Path, label: str) -> None:
    """A file where the folder `path` or one above it should be would fail only at the
    first write; label: how the message names `path` ("--out DIR")."""
    from fromscratch.io import file_above

    if file := (path if path.is_file() else file_above(path)):
        raise FromScratchError(f"{label}: {file} is a file, not a folder")


def _check_out_folder(out: Path, label: str = "") -> None:
    """The output folder of a training command, as _check_folder; and no prepared data
    folder, which `data prepare` replaces whole (run and all) on its next call."""
    from fromscratch.data import tokenizers

    label = label or f"--out {out}"
    if str(out) in ("", "."):  # an unset $RUN_DIR: the run's files all over this folder
        raise FromScratchError(
            f"{label or '--out'}: names this folder; give the run a folder of its own"
        )
    _check_folder(out, label)
    if tokenizers.is_saved_in(out):
        raise FromScratchError(
            f"{label}: a prepared data folder (it holds {tokenizers.FILE}), which `data "
            "prepare` replaces whole; give a new path, an empty folder or an earlier run's folder"
        )


def _check_out_file(out: Path | None) -> None:
    """A folder at --out (or a file above it) would fail only at the write, after all the
    work."""
    from fromscratch.io import check_file_target

    if out is not None:
        check_file_target(out, f"--out {out}")


def cmd_train(args: argparse.Namespace) -> None:
    from fromscratch.train import train
    from fromscratch.train.distributed import is_first_process

    summary = train(_config(args), args.out, resume=args.resume)
    shown = {k: v for k, v in summary.items() if "/" in k or k in ("steps", "train_time_s")}
    if is_first_process():  # under torchrun: once, not once a process
        print(json.dumps(shown, indent=1))


def cmd_lr_range(args: argparse.Namespace) -> None:
    from fromscratch.train.lr_range import lr_range_test

    result = lr_range_test(
        _config(args), args.out, steps=args.steps, min_lr=args.min_lr, max_lr=args.max_lr
    )
    print(f"chosen lr {result['lr']:.3g} ({result['rule']}) → {args.out}/lr_range.json")


def cmd_batch_size(args: argparse.Namespace) -> None:
    from fromscratch.train.batch_size import search

    result = search(_config(args), args.out, args.max_batch_size, args.memory_cap_mb)
    print(f"batch size {result['batch_size']} → {args.out}/batch_size.json")


def cmd_noise_scale(args: argparse.Namespace) -> None:
    from fromscratch.train.noise_scale import write_noise_scale

    result = write_noise_scale(
        _config(args),
        args.out,
        micro_batch=args.micro_batch,
        accumulate=args.accumulate,
        draws=args.draws,
        after_steps=args.after_steps,
    )
    measured = result["noise_scale"]
    said = "not measured" if measured is None else f"{measured:,.1f}"
    print(f"gradient noise scale {said} → {args.out}/noise_scale.json")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from fromscratch.stages.evaluate import evaluate_stage

    _check_out_file(args.out)
    data = str(args.data) if args.data else None
    sets = {split: {"split": split, "data": data} for split in args.split}
    results = evaluate_stage(str(args.model), sets, str(args.out or ""))
    print(json.dumps(results, indent=1))


def _check_sample_flags(args: argparse.Namespace) -> None:
    """Checked here, before the model loads, to name the flags rather than generate's
    arguments."""
    from fromscratch.models.common import check_sampling
    from fromscratch.stages.evaluate import check_prompt

    flags = {"max_new_tokens": "--tokens", "temperature": "--temperature", "top_k": "--top-k",
             "top_p": "--top-p"}  # fmt: skip
    check_sampling(args.tokens, args.temperature, args.top_k, args.top_p, "sample", flags)
    if args.num_samples < 1:
        raise FromScratchError(f"sample: --num-samples={args.num_samples} must be at least 1")
    check_prompt(args.prompt, "--prompt")
    _check_out_file(args.out)


def cmd_sample(args: argparse.Namespace) -> None:
    import tempfile

    from fromscratch.stages.evaluate import sample_stage

    _check_sample_flags(args)
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch) / "samples.txt"
        sample_stage(
            str(args.model),
            str(out),
            prompt=args.prompt,
            tokens=args.tokens,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            num_samples=args.num_samples,
            seed=args.seed,
            data=args.data,
            log_to_wandb=args.out is not None,  # a W&B run beside a file kept, not a scratch one
        )
        print(Path(out).read_text(encoding="utf-8"), end="")


def cmd_run(args: argparse.Namespace) -> None:
    # No torch here: with launcher slurm this process only waits on its job, and a
    # pipeline has dozens of them waiting at once on a login node.
    from fromscratch.launch import Resources, run
    from fromscratch.stages import get_stage

    if args.threads < 0:
        raise FromScratchError(f"run: --threads={args.threads} must be >= 0 (0: torch's default)")
    kwargs = _json_object("--args", args.args)
    resources = Resources.from_dict(_json_object("--resources", args.resources))
    if resources.tasks > 1 and args.stage != "train":
        raise FromScratchError(
            f"--resources: tasks={resources.tasks}: {args.stage} runs in one process; "
            "only train runs on several (DistributedDataParallel)"
        )
    stage = get_stage(args.stage)
    # The arguments are checked here, not in a job on the cluster after its wait in the
    # queue: their names and types, then what _check_stage_values can check in a moment
    # (the rest, what needs the data or the model, the job checks before its work).
    try:
        bound = _bound_arguments(args.stage, stage, kwargs)
    except FromScratchError as error:
        raise FromScratchError(f"--args: {error}") from None
    _check_folder(args.log_dir, f"--log-dir {args.log_dir}")
    try:
        if args.launcher == "slurm":  # the checks import torch: not into this process
            _in_a_process_of_its_own(_check_stage_values, args.stage, bound.arguments)
        else:  # the stage runs in this process, torch and all
            _check_stage_values(args.stage, bound.arguments)
    except FromScratchError as error:
        raise FromScratchError(f"--args: {error}") from None
    if args.threads and args.launcher != "slurm":  # the stage runs in this process
        import torch

        torch.set_num_threads(args.threads)
    try:
        result = run(
            stage,
            kwargs,
            launcher=args.launcher,
            resources=resources,
            log_dir=args.log_dir,
            name=args.name or args.stage,
        )
    except Interrupted as e:  # `run` has no --resume: the stage's own argument says
        e.how_to_resume = (
            "the same command resumes it"  # as the pipeline's rules all ask
            if bound.arguments.get("resume")
            else 'resume with "resume": true in --args'
        )
        raise
    print(json.dumps(result, default=str))


def _json_object(flag: str, text: str) -> dict:
    """The JSON object `text` of `flag`. A key written twice is an error, as in a YAML
    config."""
    from fromscratch.io import parse_json

    try:
        value = parse_json(text, flag)
    except json.JSONDecodeError as e:
        raise FromScratchError(f"{flag} must be a JSON object: {e}") from e
    if not isinstance(value, dict):
        raise FromScratchError(f"{flag} must be a JSON object ({{...}})")
    return value


# The class a stage builds of its `config` argument: a training config, but for these.
CONFIG_CLASSES = {"encoder-decoder": "fromscratch.train.seq2seq:Seq2SeqConfig"}
TRAINING_CONFIG = "fromscratch.train.config:TrainConfig"
# The stages' own checks of their options, each taking some of the stage's arguments by
# name: what the stage checks before any work, needing neither data nor a model.
OPTION_CHECKS = {
    "prepare": "fromscratch.data.prepare:check_prepare_options",
    "evaluate": "fromscratch.stages.evaluate:check_evaluate_options",
    "sample": "fromscratch.stages.evaluate:check_sample_options",
    "lr-range": "fromscratch.train.lr_range:check_options",
    "batch-size": "fromscratch.train.batch_size:check_options",
    "noise-scale": "fromscratch.train.noise_scale:check_options",
    "augment": "fromscratch.stages.augmentation:check_augment_options",
    "perceiver-plan": "fromscratch.stages.perceiver:check_plan_options",
    "perceiver-cost": "fromscratch.stages.perceiver:check_cost_options",
}
# The stages' checks of an input file (a folder an earlier job of the pipeline makes).
INPUT_CHECKS = {"augment": "fromscratch.stages.augmentation:check_augment_base"}


def _bound_arguments(name: str, stage, kwargs: dict) -> inspect.BoundArguments:
    """kwargs bound to the parameters of `stage` (named `name`), defaults applied: each
    known, none missing, each of its parameter's type."""
    signature = inspect.signature(stage)
    takes = f"{name} takes {', '.join(signature.parameters)}"
    unknown = [key for key in kwargs if key not in signature.parameters]
    if unknown:
        raise FromScratchError(f"unknown {', '.join(unknown)}; {takes}")
    try:
        bound = signature.bind(**kwargs)
    except TypeError as e:  # a required argument is missing
        raise FromScratchError(f"{e}; {takes}") from e
    _check_argument_types(stage, bound, takes)
    bound.apply_defaults()
    return bound


def check_run_arguments(name: str, kwargs: dict) -> None:
    """What `fromscratch run NAME --args KWARGS` checks before it starts its job, but its
    inputs: the workflow checks every job it is about to run with it, before the first
    starts and makes the inputs of the next. Imports torch."""
    from fromscratch.stages import get_stage

    bound = _bound_arguments(name, get_stage(name), kwargs)
    _check_stage_values(name, bound.arguments, inputs=False)


def _check_stage_values(stage: str, arguments: dict, inputs: bool = True) -> None:
    """What the job of `stage` would check first of its `arguments` (defaults included)
    and takes a moment: a `config` built as the stage builds it, with its run folder `out`
    checked as `fromscratch train --out` checks it; an `out` below a file; the stage's
    OPTION_CHECKS, and its INPUT_CHECKS unless inputs=False.  Their imports bring in
    torch."""
    from pkgutil import resolve_name

    out = arguments.get("out")
    if "config" in arguments:
        config = resolve_name(CONFIG_CLASSES.get(stage, TRAINING_CONFIG)).from_dict(
            arguments["config"]
        )
        config.check_model()
        _check_out_folder(Path(out), f"out={out}")
    elif out:  # a file or a folder, whichever the stage writes: not below a file
        _check_folder(Path(out).parent, f"out={out}")
    for checks in (OPTION_CHECKS, INPUT_CHECKS) if inputs else (OPTION_CHECKS,):
        if stage in checks:
            check = resolve_name(checks[stage])
            check(**{name: arguments[name] for name in inspect.signature(check).parameters})


def _in_a_process_of_its_own(function, *args) -> None:
    """function(*args) in a fresh Python process; its error is raised here. What it
    imports stays out of this process, which with the slurm launcher only waits on its
    job: dozens of them wait at once on a login node, and torch would add 200 MB to each.
    Those processes take turns (a_check_slot), so that dozens of jobs made ready at once
    do not add up to gigabytes for a moment."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with (
        a_check_slot(),
        ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as process,
    ):
        process.submit(function, *args).result()


CHECK_SLOTS = 4  # checking processes at once, per user and machine


@contextlib.contextmanager
def a_check_slot(folder: Path | None = None):
    """Hold one of CHECK_SLOTS lock files (in the system's temporary folder: one set per
    user and machine), waiting for one to come free.  The system releases a lock when
    its process ends, even killed, so a crash never keeps a slot."""
    import fcntl
    import os
    import tempfile
    import time

    def taken(slot) -> bool:
        try:
            fcntl.flock(slot, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another process holds it
            return False
        return True

    folder = folder or Path(tempfile.gettempdir()) / f"fromscratch-checks-{os.getuid()}"
    folder.mkdir(exist_ok=True)
    slots = [open(folder / f"slot-{i}", "a") for i in range(CHECK_SLOTS)]  # noqa: SIM115
    try:
        while not any(taken(slot) for slot in slots):  # the first free one, if any
            time.sleep(0.1)
        yield
    finally:
        for slot in slots:  # closing a file releases its lock
            slot.close()


def _check_argument_types(stage, bound: inspect.BoundArguments, takes: str) -> None:
    """Each JSON value given to a stage against its parameter's annotation (str, int,
    float, bool, dict, list[int], X | None, …), so that "10" for an int fails here, in one
    line, not as a TypeError in the job.  Annotations JSON has no value for pass."""
    typed = inspect.signature(stage, eval_str=True).parameters
    written = inspect.signature(stage).parameters  # the annotations as the source says them
    for name, value in bound.arguments.items():
        annotation = typed[name].annotation
        if annotation is not inspect.Parameter.empty and not is_of_type(value, annotation):
            shown = json.dumps(value)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise FromScratchError(
                f"{name}={shown} is not of type {written[name].annotation}; {takes}"
            )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fromscratch", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"fromscratch {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="download and tokenise data sets")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    p = data_commands.add_parser("prepare", help="download, verify and tokenise one data set")
    p.add_argument("name", help="data set name (see `fromscratch data list`)")
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        help="output folder: a new path, an empty folder or an earlier prepared folder "
        "(replaced atomically)",
    )
    p.add_argument(
        "--mirror",
        help="a local folder or file:// / http(s):// URL replacing the "
        "original hosts (default: $FROMSCRATCH_MIRROR)",
    )
    p.add_argument(
        "--tokenizer",
        help="bytes, chars, words, bpe or gpt2 (default: per data set, or --tokenizer-from's)",
    )
    p.add_argument(
        "--tokenizer-from",
        type=Path,
        help="reuse the tokenizer of another prepared folder (out-of-domain sets)",
    )
    p.add_argument(
        "--vocab-size",
        type=int,
        help="vocabulary size for words/bpe (default: 20,000 words, 8,192 bpe)",
    )
    p.add_argument(
        "--fit-on",
        help="the splits the tokenizer learns its vocabulary from, joined by + "
        "(default: the training split; train+val for a final run that trains on both)",
    )
    p.add_argument(
        "--cache",
        type=Path,
        help="download cache (default: $FROMSCRATCH_CACHE or ~/.cache/fromscratch)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of generated data sets (demo) and of drawn validation splits (imdb; "
        "default: %(default)s)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_data_prepare)
    p = data_commands.add_parser("list", help="list the data sets")
    p.set_defaults(func=cmd_data_list)

    def training_command(name: str, help: str, func) -> argparse.ArgumentParser:
        p = commands.add_parser(name, help=help)
        p.add_argument("config", type=Path, help="training config (YAML)")
        p.add_argument("--out", required=True, type=Path, help="output folder")
        p.add_argument(
            "--set",
            action="append",
            metavar="KEY=VALUE",
            help="override a config value (repeatable); model.n_head=8 sets one model field",
        )
        p.set_defaults(func=func)
        return p

    p = training_command("train", "train a model", cmd_train)
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    p = training_command("lr-range", "LR range test: pick a learning rate", cmd_lr_range)
    p.add_argument(
        "--steps", type=int, default=200, help="steps of the test (default: %(default)s)"
    )
    p.add_argument(
        "--min-lr", type=float, default=1e-6, help="the LR at its first step (default: %(default)s)"
    )
    p.add_argument(
        "--max-lr",
        type=float,
        default=1.0,
        help="the LR at its last step, reached exponentially (default: %(default)s)",
    )
    p = training_command(
        "batch-size", "largest batch that fits, throughput per size", cmd_batch_size
    )
    p.add_argument(
        "--max-batch-size",
        type=int,
        default=1024,
        help="try powers of 2 up to this many sequences (default: %(default)s)",
    )
    p.add_argument(
        "--memory-cap-mb",
        type=float,
        default=8192,
        help="CPU only: the memory a batch may use (GPUs: their own memory; default: %(default)s)",
    )
    p = training_command(
        "noise-scale",
        "gradient noise scale: the batch size past which bigger ones pay less",
        cmd_noise_scale,
    )
    p.add_argument(
        "--draws", type=int, default=8, help="draws of a big batch (default: %(default)s)"
    )
    p.add_argument(
        "--micro-batch",
        type=int,
        default=4,
        help="sequences in a small batch (default: %(default)s)",
    )
    p.add_argument(
        "--accumulate",
        type=int,
        default=8,
        help="small batches in a big one (default: %(default)s)",
    )
    p.add_argument(
        "--after-steps",
        type=int,
        default=0,
        help="train this many steps before measuring (default: %(default)s: the initial weights)",
    )

    p = commands.add_parser("evaluate", help="evaluate a trained model on whole splits")
    p.add_argument("model", type=Path, help="model.pt written by `fromscratch train`")
    p.add_argument("--split", action="append", required=True, help="split name (repeatable)")
    p.add_argument("--data", type=Path, help="prepared data folder (default: the training data)")
    p.add_argument(
        "--out",
        type=Path,
        help="write the results as JSON (and, for a model trained with W&B on, their W&B "
        "run's files to OUT.wandb/)",
    )
    p.set_defaults(func=cmd_evaluate)

    p = commands.add_parser("sample", help="generate text from a trained language model")
    p.add_argument("model", type=Path, help="model.pt written by `fromscratch train`")
    p.add_argument("--prompt", default="", help="the text to continue (default: none)")
    p.add_argument(
        "--tokens", type=int, default=200, help="new tokens per sample (>= 0; default: %(default)s)"
    )
    p.add_argument(
        "--num-samples", type=int, default=1, help="how many samples (>= 1; default: %(default)s)"
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=0.8,
        help="divides the logits: below 1 sharper, above 1 flatter; 0: greedy (>= 0; "
        "default: %(default)s)",
    )
    p.add_argument(
        "--top-k", type=int, default=None, help="draw from the K likeliest tokens only (>= 1)"
    )
    p.add_argument(
        "--top-p",
        type=float,
        default=None,
        help="nucleus sampling: draw from the likeliest tokens that together reach P, in (0, 1]",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the same seed draws the same samples (default: %(default)s)",
    )
    p.add_argument("--data", type=Path, help="prepared data folder (default: the training data)")
    p.add_argument(
        "--out",
        type=Path,
        help="also write the samples to this file (and, for a model trained with W&B on, "
        "their W&B run's files to OUT.wandb/)",
    )
    p.set_defaults(func=cmd_sample)

    from fromscratch.stages import STAGES

    p = commands.add_parser(
        "run", help="run one pipeline stage, here or on SLURM (what each Snakemake rule calls)"
    )
    p.add_argument("stage", choices=list(STAGES), metavar="STAGE", help="one of: %(choices)s")
    p.add_argument("--args", required=True, help="the stage's keyword arguments, as JSON")
    p.add_argument(
        "--launcher",
        default="local",
        choices=("local", "debug", "slurm"),
        help="local: a process here; debug: in this process (for a debugger); slurm: a "
        "SLURM job, waited for (default: %(default)s)",
    )
    p.add_argument(
        "--resources",
        default="{}",
        help="JSON: partition, account, qos, gpus, cpus, mem_gb, time_min, constraint, "
        "tasks, signal_delay_s, max_requeues, extra (sbatch flags)",
    )
    p.add_argument(
        "--log-dir",
        type=Path,
        default=Path("results/logs"),
        help="where submitit keeps the job's logs and its pickled call (default: %(default)s)",
    )
    p.add_argument("--name", help="job name (default: the stage)")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads (local launcher; default 0: torch's own choice)",
    )
    p.set_defaults(func=cmd_run)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with exit_on_termination():
            args.func(args)
    except Interrupted as e:
        print(f"fromscratch: {e}", file=sys.stderr)
        return 128 + e.signum  # as a shell reports a process a signal stopped
    except FromScratchError as e:
        # one line, even where the message quotes another library's (Hugging Face's are
        # paragraphs)
        print(f"fromscratch: error: {' '.join(str(e).split())}", file=sys.stderr)
        if getattr(e, "details", ""):  # a failed job's log, below the line that names it
            print(e.details, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fromscratch: interrupted", file=sys.stderr)
        return 130
    return 0


def console_script() -> int:
    """`fromscratch` as installed: main, then a quick exit. (Tests call main: what they
    leave behind is collected.)"""
    code = main()
    leave_objects_to_the_os_at_exit()
    return code


if __name__ == "__main__":
    sys.exit(console_script())
