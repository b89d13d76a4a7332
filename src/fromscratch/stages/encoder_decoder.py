"""Stage: train one seq2seq model (encoder/decoder or decoder-only GPT) and score it by length.

Its run folder gets summary.json, metrics.jsonl, accuracy.csv (exact match and token
accuracy at each length), model.pt and, with checkpoint_every, checkpoints to resume from.
"""

from __future__ import annotations


def encoder_decoder_stage(config: dict, out: str, resume: bool = True) -> dict:
    """config: a Seq2SeqConfig mapping (train/seq2seq.py); out: the run folder."""
    from fromscratch.train.checkpoint import sole_run
    from fromscratch.train.seq2seq import Seq2SeqConfig, train_seq2seq

    with sole_run(out):
        summary = train_seq2seq(Seq2SeqConfig.from_dict(config), out, resume=resume)
    keep = ("architecture", "seed", "parameters", "steps", "train_time_s", "final_train_loss")
    return {k: summary[k] for k in keep} | {
        k: v for k, v in summary.items() if k.startswith("test/")
    }
