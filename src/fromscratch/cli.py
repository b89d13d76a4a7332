"""`fromscratch ...`: the command each pipeline step calls, and the one users type.

Every failure the user can fix ends the command with exit code 1 and one line on stderr
that names what is wrong (and, where there is a choice, what is allowed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fromscratch import FromScratchError


def cmd_data_prepare(args: argparse.Namespace) -> None:
    from fromscratch.data import prepare

    meta = prepare(
        args.name,
        args.out,
        mirror=args.mirror,
        tokenizer=args.tokenizer,
        tokenizer_from=args.tokenizer_from,
        vocab_size=args.vocab_size,
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


def cmd_demo(args: argparse.Namespace) -> None:
    from fromscratch.data import prepare

    out = Path(args.out) / "data" / "demo-words"
    meta = prepare("demo", out, progress=not args.quiet)
    splits = ", ".join(f"{n} {s['examples']:,}" for n, s in meta["splits"].items())
    print(f"demo data set prepared ({splits} reviews): {out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fromscratch", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="download and tokenise data sets")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    p = data_commands.add_parser("prepare", help="download, verify and tokenise one data set")
    p.add_argument("name", help="data set name (see `fromscratch data list`)")
    p.add_argument("--out", required=True, type=Path, help="output folder (written atomically)")
    p.add_argument(
        "--mirror",
        help="a local folder or file:// / http(s):// URL replacing the "
        "original hosts (default: $FROMSCRATCH_MIRROR)",
    )
    p.add_argument("--tokenizer", help="bytes, chars, words, bpe or gpt2 (default: per data set)")
    p.add_argument(
        "--tokenizer-from",
        type=Path,
        help="reuse the tokenizer of another prepared folder (out-of-domain sets)",
    )
    p.add_argument("--vocab-size", type=int, help="vocabulary size for words/bpe")
    p.add_argument(
        "--cache",
        type=Path,
        help="download cache (default: $FROMSCRATCH_CACHE or ~/.cache/fromscratch)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of generated data sets (demo)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_data_prepare)
    p = data_commands.add_parser("list", help="list the data sets")
    p.set_defaults(func=cmd_data_list)

    p = commands.add_parser("demo", help="run the demo on the embedded corpus, offline")
    p.add_argument("--out", type=Path, default=Path("results/demo"))
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except FromScratchError as e:
        print(f"fromscratch: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fromscratch: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
