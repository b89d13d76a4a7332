"""Tokeniser throughput on all 50,000 IMDb reviews (every split), ours against a plain
Python loop over the reviews and against Hugging Face's tokenizers, measured in the same run:
--rounds rounds, each timing ours and then each peer once; the medians are reported, and
ours' speed-up is the median of the rounds' ratios.

    python benchmarks/bench_tokenizers.py [--mirror DIR] [--rounds 3] [--out FILE.json]

Goals: GPT-2 BPE ≤ 15 s, word-level (vocabulary fitted on the train split) ≤ 20 s.
"""

from __future__ import annotations

import argparse
import json
import statistics

from common import timed, write_result

from fromscratch.data import tokenizers
from fromscratch.data.download import default_mirror, fetch
from fromscratch.data.sets import imdb


def hf_words(train: list[str], texts: list[str], k: int):
    """Hugging Face `tokenizers`' WordLevel model with the same normalisation and split."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(
        vocab_size=k, special_tokens=["<pad>", "<unk>"], show_progress=False
    )
    tok.train_from_iterator(train, trainer=trainer)
    return [e.ids for e in tok.encode_batch_fast(texts, add_special_tokens=False)]


def hf_gpt2(folder):
    """Hugging Face's GPT2TokenizerFast from GPT-2's own files (built before the timing,
    as ours is)."""
    from transformers import GPT2TokenizerFast

    merges = (folder / "vocab.bpe").read_text(encoding="utf-8").split("\n")[1:]
    return GPT2TokenizerFast(
        vocab=json.loads((folder / "encoder.json").read_text("utf-8")),
        merges=[tuple(m.split()) for m in merges if m],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mirror", default=default_mirror(), help="default: $FROMSCRATCH_MIRROR")
    parser.add_argument("--rounds", type=int, default=3, help="timings of each, interleaved")
    parser.add_argument("--out", help="JSON result file")
    args = parser.parse_args()

    archive = fetch(imdb.SOURCE, mirror=args.mirror, progress=False)
    splits, read_s = timed(imdb.read, {"archive": archive}, 0)
    train = splits["train"].texts
    texts = [text for split in splits.values() for text in split.texts]
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    gpt2_files = [
        fetch(s, mirror=args.mirror, progress=False) for s in tokenizers.GPT2_SOURCES.values()
    ]
    gpt2 = tokenizers.fit("gpt2", [], gpt2_folder=gpt2_files[0].parent)
    hf_gpt2_tokenizer = hf_gpt2(gpt2.folder)

    def ours_words():
        return tokenizers.fit("words", train, vocab_size=20_000).encode_batch(texts)

    runs = {  # name: (ours, {peer: function}), each over all 50,000 reviews
        "gpt2": (
            lambda: gpt2.encode_batch(texts),
            {
                "python loop (tiktoken, one review at a time)": lambda: [
                    gpt2.encoding.encode_ordinary(t) for t in texts
                ],
                "HF GPT2TokenizerFast (batch)": lambda: hf_gpt2_tokenizer(texts)["input_ids"],
            },
        ),
        "words": (
            ours_words,
            {
                "HF tokenizers WordLevel (batch)": lambda: hf_words(train, texts, 20_000),
            },
        ),
    }
    results = {}
    for name, (ours, peers) in runs.items():
        seconds = {"ours": [], **{peer: [] for peer in peers}}
        for _ in range(args.rounds):
            ids, ours_seconds = timed(ours)
            seconds["ours"].append(ours_seconds)
            for peer, fn in peers.items():
                seconds[peer].append(timed(fn)[1])
        median = statistics.median(seconds["ours"])
        r = results[name] = {
            "seconds": round(median, 2),
            "MB_per_s": round(megabytes / median, 2),
            "tokens": int(sum(len(x) for x in ids)),
            "rounds": {who: [round(t, 2) for t in times] for who, times in seconds.items()},
            "peers": {},
        }
        print(
            f"{name:6s} ours  {median:6.2f} s  {megabytes / median:6.2f} MB/s  "
            f"{r['tokens']:,} tokens"
        )
        for peer in peers:
            peer_median = statistics.median(seconds[peer])
            ratios = [p / o for p, o in zip(seconds[peer], seconds["ours"], strict=True)]
            r["peers"][peer] = {
                "seconds": round(peer_median, 2),
                "MB_per_s": round(megabytes / peer_median, 2),
                "ours_speedup": round(statistics.median(ratios), 2),
            }
            print(
                f"       {peer}: {peer_median:6.2f} s  {megabytes / peer_median:6.2f} MB/s"
                f"  (ours ×{r['peers'][peer]['ours_speedup']:.2f})"
            )
    path = write_result(
        "tokenizers",
        {
            "reviews": len(texts),
            "megabytes": round(megabytes, 1),
            "read_archive_seconds": round(read_s, 2),
            "rounds": args.rounds,
            "goals_seconds": {"gpt2": 15, "words": 20},
            "results": results,
        },
        args.out,
    )
    print(f"{len(texts):,} reviews, {megabytes:.1f} MB (archive read in {read_s:.1f} s) → {path}")


if __name__ == "__main__":
    main()
