"""Training and scoring sequence-to-sequence models: an encoder/decoder or a decoder-only GPT.

    summary = train_seq2seq(Seq2SeqConfig(architecture="decoder_only", task="reverse"), out)

The two architectures get the same task, the same examples in the same order, the same
optimizer, schedule and number of steps, and (nearly) the same number of parameters:
the GPT's width is chosen to match the encoder/decoder's parameter count. They differ
only in how they read the source:

    encoder_decoder   encoder(source) -> memory;  decoder(START target | memory) -> target
    decoder_only      GPT(source START target) -> target   (the loss on the target only)

After training, both answer every test source by greedy decoding, one length at a time,
and we count the answers that are exactly right (exact match) and the right tokens
(token accuracy) at each length, also at lengths longer than any seen in training.

The loop is the Trainer's (train/loop.py) cut down to one kind of batch: learning rate
from the schedule, forward, backward, gradient norm (logged before clipping), clipping,
a NaN guard, the optimizer step; metrics.jsonl/summary.json/W&B through the Tracker; and
checkpoints that resume exactly (every batch is a function of the seed and the step),
also saved after the last step and when SIGTERM, SIGUSR2 or SIGHUP arrives (StopSignals:
SLURM's requeue, as the Trainer).
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fromscratch.data.seq2seq import IGNORE, START, TASKS, Seq2SeqBatch, Seq2SeqTask
from fromscratch.io import atomic_path
from fromscratch.models import GPT, ConfigError, EncoderDecoder, EncoderDecoderConfig, GPTConfig
from fromscratch.models.common import Model, evaluating
from fromscratch.train import checkpoint
from fromscratch.train.config import OptimizerConfig
from fromscratch.train.loop import StopSignals, closed_if_failed, pick_device, stop_if_not_finite
from fromscratch.train.schedule import learning_rate, step_progress

ARCHITECTURES = ("encoder_decoder", "decoder_only")


@dataclasses.dataclass
class Seq2SeqConfig(OptimizerConfig):
    """One seq2seq training run.

    architecture: encoder_decoder | decoder_only.  task: copy | reverse | sort, over
    `symbols` different tokens, trained on lengths min_length..max_length and tested on
    lengths 1..test_max_length (`test_examples` per length).  model: the EncoderDecoder's
    fields (n_layer, n_head, n_embd, position, dropout, fast, ...; vocab_size and context
    follow from the task).  gpt_layers: the decoder-only GPT's depth (0: 2 * n_layer,
    the encoder's blocks plus the decoder's); its width is chosen to match parameters.
    The optimizer, schedule, steps and seed as in OptimizerConfig (eval_every 0: at the
    end only).
    """

    architecture: str = "encoder_decoder"
    task: str = "reverse"
    symbols: int = 10
    min_length: int = 1
    max_length: int = 12
    test_max_length: int = 16
    test_examples: int = 100
    model: dict = dataclasses.field(default_factory=dict)
    gpt_layers: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_choice("architecture", ARCHITECTURES)
        self._check_choice("task", TASKS)
        self._check_positive("symbols", "min_length", "max_length", "test_max_length")
        self._check_positive("test_examples", "max_steps")
        self._check_not_negative("gpt_layers")
        if self.max_length < self.min_length:
            self._fail("max_length", f"{self.max_length} is below min_length={self.min_length}")
        if self.test_max_length < self.max_length:
            self._fail("test_max_length", f"{self.test_max_length} is below max_length")
        fixed = {"vocab_size", "context"} & set(self.model)
        if fixed:
            self._fail("model", f"{', '.join(sorted(fixed))} follow from the task; leave out")

    def check_model(self) -> None:
        """Every field of the model, before any work (the GPT's follow from them)."""
        encoder_decoder_config(self)

    def task_spec(self) -> Seq2SeqTask:
        return Seq2SeqTask(self.task, self.symbols, self.min_length, self.max_length)


# --------------------------------------------------------------------------- models


def encoder_decoder_config(config: Seq2SeqConfig) -> EncoderDecoderConfig:
    """The encoder/decoder: source and target each up to test_max_length tokens."""
    vocab = config.task_spec().vocab_size
    return EncoderDecoderConfig.from_dict(
        {**config.model, "vocab_size": vocab, "context": config.test_max_length}
    )


def decoder_only_config(config: Seq2SeqConfig) -> GPTConfig:
    """The GPT: `source START target` is up to 2 * test_max_length tokens (the last
    target token is never an input); depth gpt_layers, width matched in parameters."""
    reference = encoder_decoder_config(config)
    layers = config.gpt_layers or 2 * reference.n_layer
    fields = {**reference.to_dict(), "n_layer": layers, "context": 2 * config.test_max_length}
    # the models built only to be counted must not move the random stream that the
    # trained model's initial weights come from
    with torch.random.fork_rng(devices=[]):
        return matched_width(fields, EncoderDecoder(reference).num_parameters())


def matched_width(fields: dict, parameters: int) -> GPTConfig:
    """The GPTConfig of `fields` whose width (a multiple of n_head that the config
    accepts, up to 4 * n_embd) gives the parameter count closest to `parameters`.

    Parameters grow with the width, so a binary search finds it in a few tries (each
    builds a GPT and counts: exact, whatever the blocks hold).
    """

    def count(width: int) -> int:
        return GPT(GPTConfig.from_dict({**fields, "n_embd": width})).num_parameters()

    n_head = fields["n_head"]
    widths = range(n_head, 4 * fields["n_embd"] + 1, n_head)
    widths = [w for w in widths if _accepted({**fields, "n_embd": w})]
    above = bisect.bisect_left(widths, parameters, key=count)  # the first with as many
    width = min(widths[max(above - 1, 0) : above + 1], key=lambda w: abs(count(w) - parameters))
    return GPTConfig.from_dict({**fields, "n_embd": width})


def _accepted(fields: dict) -> bool:
    try:
        GPTConfig.from_dict(fields)
    except ConfigError:  # e.g. rope needs an even head size
        return False
    return True


def build_model(config: Seq2SeqConfig) -> Model:
    if config.architecture == "encoder_decoder":
        return EncoderDecoder(encoder_decoder_config(config))
    return GPT(decoder_only_config(config))


# --------------------------------------------------------------------------- loss


def seq2seq_loss(
    model: Model, batch: Seq2SeqBatch, device: torch.device
) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over the target tokens of one batch, and how many there were."""
    if isinstance(model, EncoderDecoder):
        decoder_input, labels = batch.encoder_decoder_inputs()
        source, source_mask = batch.source.to(device), batch.source_mask.to(device)
        logits = model(source, decoder_input.to(device), source_mask)
    else:
        sequence, labels = batch.decoder_only_inputs()
        logits = model(sequence.to(device))
    labels = labels.to(device)
    loss = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1), ignore_index=IGNORE
    )
    return loss, int((labels != IGNORE).sum())


# --------------------------------------------------------------------------- scoring


@torch.no_grad()
def greedy_answers(model: Model, source: torch.Tensor, length: int) -> torch.Tensor:
    """The model's answer to each source (B, S) without padding: `length` tokens, each
    the likeliest next token given the source and the answer so far. (B, length)."""
    start = torch.full_like(source[:, :1], START)
    if isinstance(model, EncoderDecoder):
        out = model.generate(source, start, length, temperature=0)
    else:
        out = model.generate(torch.cat((source, start), dim=1), length, temperature=0)
    return out[:, -length:]


def accuracy_by_length(
    model: Model, task: Seq2SeqTask, test_max_length: int, count: int, device: torch.device
) -> list[dict]:
    """Exact match and token accuracy of greedy answers at each length 1..test_max_length,
    on `count` test strings of each (none of them trained on; fewer where there are)."""
    rows = []
    for length in range(1, test_max_length + 1):
        batch = task.test_batch(length, count).to(device)
        with evaluating(model):
            correct = greedy_answers(model, batch.source, length) == batch.target
        rows.append(
            {
                "length": length,
                "trained": task.min_length <= length <= task.max_length,
                "exact_match": correct.all(dim=1).float().mean().item(),
                "token_accuracy": correct.float().mean().item(),
                "examples": len(batch.source),  # distinct strings: fewer where there are
            }
        )
    return rows


def accuracy_summary(rows: list[dict]) -> dict:
    """Mean accuracies over the trained lengths and over the longer, unseen ones."""
    longest = max(r["length"] for r in rows if r["trained"])
    parts = {
        "trained": [r for r in rows if r["trained"]],
        "longer": [r for r in rows if r["length"] > longest],
    }
    return {
        f"test/{metric}_{name}": sum(r[metric] for r in part) / len(part)
        for name, part in parts.items()
        if part
        for metric in ("exact_match", "token_accuracy")
    }


def write_rows(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# --------------------------------------------------------------------------- training


def train_seq2seq(config: Seq2SeqConfig, out: str | Path, resume: bool = True) -> dict:
    """Train one model on the task; write metrics.jsonl, accuracy.csv (per length),
    model.pt and summary.json into `out`; return the summary."""
    c, out = config, Path(out)
    task = c.task_spec()
    device = pick_device(c.device)
    torch.manual_seed(c.seed)
    model = build_model(c).to(device)
    optimizer = model.configure_optimizer(
        c.weight_decay, c.lr, (c.beta1, c.beta2), fused=device.type in ("cpu", "cuda")
    )
    step, tokens, elapsed = 0, 0, 0.0
    loss_value = None  # the last step's loss: summary.json's final_train_loss
    saved = checkpoint.resume_from(out / "checkpoints", c.to_dict(), resume)
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        checkpoint.set_rng_state(saved["rng"])
        step, tokens, elapsed = saved["step"], saved["tokens"], saved["elapsed"]
        loss_value = saved.get("train_loss")  # absent from checkpoints of older versions
    tracker = c.tracker(out, c.to_dict(), saved, ("model.pt", "accuracy.csv"))
    c.warn_if_warm_up_outlasts_the_run()

    def save_checkpoint() -> None:
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": checkpoint.rng_state(),
            "step": step,
            "tokens": tokens,
            "elapsed": elapsed,
            "train_loss": loss_value,
            **tracker.checkpoint_state(),
            "config": c.to_dict(),
        }
        checkpoint.save(out / "checkpoints", state, keep=c.keep_checkpoints)

    model.train()
    with closed_if_failed(tracker):  # a failed or stopped run ends so in W&B too
        with StopSignals() as signals:
            while step < c.max_steps:
                started = time.perf_counter()
                progress = step_progress(step, c.max_steps, c.warmup_steps)
                lr = learning_rate(c.lr, step, progress, c.warmup_steps, c.schedule, c.min_lr_ratio)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                batch = task.train_batch(c.seed, step, c.batch_size)
                loss, n = seq2seq_loss(model, batch, device)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    model.parameters(), c.grad_clip if c.grad_clip > 0 else math.inf
                ).item()
                loss_value = loss.item()
                stop_if_not_finite(loss_value, grad_norm, step, out / "checkpoints")
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                tokens += n
                elapsed += time.perf_counter() - started
                if step % c.log_every == 0 or step == c.max_steps:
                    metrics = {"loss": loss_value, "lr": lr, "grad_norm": grad_norm}
                    tracker.log(metrics | {"target_tokens": tokens, "elapsed_s": elapsed}, step)
                if c.eval_every and step % c.eval_every == 0 and step < c.max_steps:
                    rows = accuracy_by_length(
                        model, task, c.test_max_length, c.test_examples, device
                    )
                    tracker.log(accuracy_summary(rows), step)
                # after the last step too: a run stopped in the final scoring resumes here
                if (c.checkpoint_every and step % c.checkpoint_every == 0) or step == c.max_steps:
                    save_checkpoint()
                signals.checkpoint_if_asked(save_checkpoint, step)

        rows = accuracy_by_length(model, task, c.test_max_length, c.test_examples, device)
        final = accuracy_summary(rows)
        tracker.log(final, step)
        write_rows(out / "accuracy.csv", rows)
        with atomic_path(out / "model.pt") as tmp:
            torch.save({"model": model.state_dict(), "config": c.to_dict()}, tmp)
        summary = {
            "architecture": c.architecture,
            "task": c.task,
            "seed": c.seed,
            "steps": step,
            "train_time_s": elapsed,
            "final_train_loss": loss_value,
            "parameters": model.num_parameters(),
            "model_config": model.config.to_dict(),
            "device": str(device),
            **final,
        }
        written = tracker.finish(summary, c.to_dict())
    # last: a run stopped before this mark resumes from its last checkpoint, not afresh
    checkpoint.mark_finished(out / "checkpoints")
    return written
