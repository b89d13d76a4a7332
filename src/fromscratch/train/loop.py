"""The training loop, for classifiers and language models alike.

    train(config, out) → summary

One step: set the LR from the schedule → grad_accum micro-batches (autocast, backward) →
unscale → gradient norm (logged, before clipping) → clip → optimizer step → NaN guard
(a non-finite step stops the run before anything more is saved).
Around it: evaluation every `eval_every` steps, a checkpoint every `checkpoint_every`
steps, after the last step and when SIGTERM, SIGUSR2, SIGHUP or Ctrl-C arrives, and stops
on max_steps, the time budget or the token budget. Everything a run needs to continue
exactly is in its checkpoints. With a `teacher` (train/distill.py) a language model learns
from its soft targets as well.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from fromscratch import FromScratchError, Interrupted, exit_by_signal, heeded
from fromscratch.data import PreparedData, tokenizers
from fromscratch.io import atomic_path
from fromscratch.train import checkpoint
from fromscratch.train.batch_size import out_of_memory
from fromscratch.train.batches import ClassificationBatches, LMBatches, keyed_rng
from fromscratch.train.config import TrainConfig
from fromscratch.train.distill import Teacher, load_teacher
from fromscratch.train.distributed import Distributed, is_first_process
from fromscratch.train.ema import EMA
from fromscratch.train.evaluate import (
    check_stride,
    evaluate_classifier,
    evaluate_lm,
    lm_targets_for,
)
from fromscratch.train.models import build_model
from fromscratch.train.schedule import decay_progress, learning_rate, step_progress

# What a run's W&B config says of its prepared data, from its meta.json
PREPARED_DATA_KEYS = ("dataset", "tokenizer", "vocab_size", "augmentation")


class NonFiniteLoss(FromScratchError):
    """A NaN or infinite loss or gradient: the run stops, its last good checkpoint stays."""


def stop_if_not_finite(loss: float, grad_norm: float, done: int, checkpoints: Path) -> None:
    """Stop the run at a step whose loss or gradient norm is NaN or infinite, naming it as
    metrics.jsonl and the checkpoints count (`done` steps before it: step done + 1) and the
    last checkpoint: the run goes back to it, not on from the weights in memory."""
    if math.isfinite(loss) and math.isfinite(grad_norm):
        return
    saved = checkpoint.list_checkpoints(checkpoints)
    last = saved[-1] if saved else "none yet"
    what = "loss" if not math.isfinite(loss) else "gradient norm"
    raise NonFiniteLoss(f"non-finite {what} at step {done + 1}; last good checkpoint: {last}")


class StopSignals:
    """SIGTERM, SIGUSR2, SIGHUP (a closed terminal) and Ctrl-C during training, noted when
    they come and acted on between steps.

        with StopSignals() as signals:
            while ...:
                (one step)
                signals.checkpoint_if_asked(save_checkpoint, step)

    After the step a signal arrived in, a checkpoint is saved and the signal goes on to the
    handler that was there before training. Under submitit, on SIGUSR2 (SLURM's warning
    before the time limit) that one requeues the job, which resumes from the checkpoint,
    and exits; SIGTERM it ignores, and training goes on. Where the signal would only stop
    the process (a terminal, Snakemake stopping a rule), training stops: Interrupted, resume
    with --resume.
    Ctrl-C stops the same way, so that minutes of training are not lost to a key press; a
    second Ctrl-C before the step ends stops at once, without the checkpoint.
    A signal noted after the last check goes on to that handler when the block ends.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGUSR2)  # and Ctrl-C and SIGHUP, unless ignored

    def __enter__(self) -> StopSignals:
        self.pending: int | None = None
        noted = (*self.SIGNALS, *heeded(signal.SIGINT, signal.SIGHUP))
        self.previous = {sig: signal.signal(sig, self._note) for sig in noted}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        if self.pending is not None and exc[0] is None:
            signal.raise_signal(self.pending)  # one that came after the last check

    def _note(self, signum, frame) -> None:
        if signum == signal.SIGINT:
            if self.pending == signal.SIGINT:
                self.pending = None  # acted on: here
                raise KeyboardInterrupt
            print(
                "\nCtrl-C: saving a checkpoint after this step (Ctrl-C again: stop without it)",
                file=sys.stderr,
            )
        self.pending = signum

    def checkpoint_if_asked(self, save, step: int, signum: int | None = None) -> None:
        """signum: the signal the processes of a distributed run agreed to act on now (0:
        none); one noted here after they agreed waits for the next step, or this process
        would save (with the others, a collective) alone.  None: the one noted here."""
        signum = self.pending if signum is None else signum or None
        if signum is None:
            return
        save()
        if self.pending == signum:
            self.pending = None
        previous = self.previous.get(signum)  # a SIGHUP only another process noted: None
        # The handlers that would only stop the process (Python's Ctrl-C handler, the
        # `fromscratch` command's for SIGTERM and SIGHUP) would say nothing of the checkpoint.
        if not callable(previous) or previous in (signal.default_int_handler, exit_by_signal):
            raise Interrupted(signum, step)
        previous(signum, None)


@contextlib.contextmanager
def closed_if_failed(tracker):
    """End the tracker's W&B run as failed (exit code 1) when the block raises anything (an
    error, a NaN loss, a stop signal, submitit's requeue), then let it go on: W&B's own exit
    hook would record such a run with exit code 0."""
    try:
        yield
    except BaseException:
        tracker.close()
        raise


@dataclass
class Progress:
    step: int = 0
    tokens: int = 0
    elapsed: float = 0.0  # seconds of training steps (not evaluation), across resumes
    best: dict = field(default_factory=dict)
    train_loss: float | None = None  # the last step's: summary.json's final_train_loss
    # where warm-up ended on a time or token clock: the decay starts there, as it starts at
    # warmup_steps on the steps clock (counted from 0, it would drop at warm-up's end)
    warmup_elapsed: float = 0.0
    warmup_tokens: int = 0


def pick_device(name: str) -> torch.device:
    """`auto`: a CUDA GPU where there is one, else the CPU; or the device named, if it is here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    allowed = f"device {name!r}: allowed: auto, cpu, cuda, cuda:N, mps"
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise FromScratchError(allowed) from error
    here = {
        "cpu": True,
        "cuda": torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count(),
        "mps": torch.backends.mps.is_available(),
    }
    if device.type not in here:  # xpu, meta, ...: PyTorch's, not ones training runs on here
        raise FromScratchError(allowed)
    if not here[device.type]:
        raise FromScratchError(f"device {name!r}: there is none here; use device: auto or cpu")
    return device


def loss_fn(model, batch, family: str, teacher: Teacher | None = None) -> torch.Tensor:
    """Mean cross-entropy of one micro-batch (with a teacher: the distillation loss)."""
    if family == "classifier":
        x, mask, y = batch
        return F.cross_entropy(model(x, mask).float(), y)
    x, y = batch
    logits = model(x)
    y = lm_targets_for(logits, y)
    if teacher is not None:
        return teacher.loss(logits, x, y)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1))


def batch_tokens(batch, family: str) -> int:
    """How many tokens a micro-batch holds: a classifier's without the padding."""
    return int(batch[1].sum()) if family == "classifier" else batch[0].numel()


class Trainer:
    def __init__(
        self,
        config: TrainConfig,
        out: str | Path,
        resume: bool = False,
        progress_bar: bool | None = None,
    ):
        self.config = config = config.resolved()
        self.out = Path(out)
        self.dist = Distributed.from_environment()
        self.device = pick_device(config.device) if self.dist.world == 1 else self.dist.device
        config.check_model()  # a wrong model field fails here, before the data is read
        self.data = PreparedData(config.data)
        torch.manual_seed(config.seed)
        self.model = build_model(config, self.data.meta).to(self.device)
        if self.dist.world > 1:
            # The same initial weights everywhere; from here on each process draws its own
            # dropout masks (with one seed, every process would repeat the same masks on its
            # share of the batch)
            torch.manual_seed(int(keyed_rng(config.seed, self.dist.rank).integers(2**62)))
        for split in (config.train_split, *config.eval_split_list):
            self.data.check_split(split)  # fails now, not after the last step
        self.context, self.max_length = config.lengths(self.model.config.context)
        if config.eval_stride and config.family != "classifier":  # now, not after training
            check_stride(self.model, self.context, config.eval_stride, self.device)
        self.teacher = None
        if config.teacher:
            self.teacher = load_teacher(
                config.teacher,
                self.data,
                self.context,
                config.distill_temperature,
                config.distill_weight,
            )
            self.teacher.model.to(self.device)
        self.optimizer = self.model.configure_optimizer(
            config.weight_decay,
            config.lr,
            (config.beta1, config.beta2),
            fused=self.device.type in ("cpu", "cuda"),
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.precision == "fp16")
        self.ema = EMA(self.model, config.ema_decay) if config.ema_decay else None
        self.batches = self.batch_stream(config.batch_size)
        self.state = Progress()
        saved = checkpoint.resume_from(
            self.out / "checkpoints",
            self.config_dict(),
            resume,
            owner=self.dist.is_main,
            data_meta=self.data.meta,
        )
        if saved is not None:
            self._restore(saved)
        self.forward_model = self.dist.wrap(self.model)
        if config.compile:
            self.forward_model = torch.compile(self.forward_model)
        # in W&B, beside the settings: what the data folder holds (an augmented copy's
        # strategy and rate), so that runs line up by it in the runs table
        prepared = {k: v for k, v in self.data.meta.items() if k in PREPARED_DATA_KEYS}
        self.tracker = config.tracker(
            self.out,
            self.config_dict() | {"prepared_data": prepared},
            saved,
            ("model.pt",),
            enabled=self.dist.is_main,
            x_axis="tokens",  # as the figures: runs of other batch sizes line up
        )
        # one bar, the first process's, not one a process
        self.show_bar = (
            self.dist.is_main and sys.stderr.isatty() if progress_bar is None else progress_bar
        )

    @classmethod
    def scratch(cls, config: TrainConfig, **changes) -> Trainer:
        """A trainer for steps that nobody keeps (tuning): no W&B, no folder left behind."""
        config = replace(config, wandb_mode="disabled", **changes)
        with tempfile.TemporaryDirectory() as scratch:
            return cls(config, scratch, progress_bar=False)

    def config_dict(self) -> dict:
        config = {
            **self.config.to_dict(),
            "model": {**self.model.config.to_dict(), "family": self.config.family},
        }
        if self.teacher is not None:  # its config and weights: resume checks them too
            config["teacher_model"] = self.teacher.record
        return config

    def batch_stream(self, batch_size: int, name: str = "batch_size"):
        """The training batches of `batch_size` sequences: batch i is a function of the
        seed and i alone.  name: what the caller calls batch_size (for error messages)."""
        c, d = self.config, self.data
        kwargs = dict(seed=c.seed, rank=self.dist.rank, world=self.dist.world)
        if c.family == "classifier":
            return ClassificationBatches(
                d.tokens(c.train_split),
                d.offsets(c.train_split),
                d.labels(c.train_split),
                batch_size,
                self.max_length,
                head_tokens=c.head_tokens,
                name=name,
                **kwargs,
            )
        return LMBatches(d.stream(c.train_split), self.context, batch_size, **kwargs)

    # ------------------------------------------------------------------ checkpoints

    def _restore(self, saved: dict) -> None:
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scaler.load_state_dict(saved["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(saved["ema"])
        states = saved["rng"]  # one a process (a dict: one process, an older checkpoint)
        states = [states] if isinstance(states, dict) else states
        if len(states) == self.dist.world:
            checkpoint.set_rng_state(states[self.dist.rank])
        elif self.dist.is_main:
            print(
                f"saved by {len(states)} processes, resumed on {self.dist.world}: the "
                "dropout masks from here on are not the uninterrupted run's",
                file=sys.stderr,
            )
        threads = saved.get("cpu_threads")  # None: on a GPU, or an older checkpoint
        if threads not in (None, torch.get_num_threads()) and self.dist.is_main:
            print(
                f"saved on {threads} CPU thread{'s' * (threads != 1)}, resumed on "
                f"{torch.get_num_threads()}: the sums come out in another order, and the "
                "weights from here on are not the uninterrupted run's bit for bit",
                file=sys.stderr,
            )
        self.state = Progress(**saved["progress"])

    def save_checkpoint(self) -> Path | None:
        """Every process calls it at the same step; the first one writes."""
        rng = self.dist.gather_objects(checkpoint.rng_state())
        if not self.dist.is_main:
            return None
        return checkpoint.save(
            self.out / "checkpoints",
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "rng": rng,
                "progress": vars(self.state).copy(),
                "step": self.state.step,
                **self.tracker.checkpoint_state(),
                "config": self.config_dict(),
                "data_meta": self.data.meta,
                "cpu_threads": torch.get_num_threads() if self.device.type == "cpu" else None,
            },
            keep=self.config.keep_checkpoints,
        )

    # ------------------------------------------------------------------ the loop

    def budget_progress(self) -> float:
        c, s = self.config, self.state
        if c.clock == "time":
            return decay_progress(s.elapsed, s.warmup_elapsed, c.time_budget_s)
        if c.clock == "tokens":
            return decay_progress(s.tokens, s.warmup_tokens, c.token_budget)
        return step_progress(s.step, c.max_steps, c.warmup_steps)

    def done(self) -> bool:
        c, s = self.config, self.state
        return (
            (c.max_steps > 0 and s.step >= c.max_steps)
            or (c.time_budget_s > 0 and s.elapsed >= c.time_budget_s)
            or (c.token_budget > 0 and s.tokens >= c.token_budget)
        )

    def autocast(self):
        if self.config.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.config.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def to_device(self, batch_tensor: torch.Tensor) -> torch.Tensor:
        """A batch's tensor on the training device.  To a GPU from pinned memory: a copy
        from ordinary memory would wait for all the work queued before it, leaving the GPU
        idle while the step's kernels are queued again."""
        if self.device.type != "cuda":
            return batch_tensor.to(self.device)
        return batch_tensor.pin_memory().to(self.device, non_blocking=True)

    def train_step(
        self, lr: float | None = None, stop_signal: Callable[[], int | None] = lambda: None
    ) -> dict:
        """One optimizer step at the schedule's learning rate (or at `lr`, if given), counted
        in the run's step, tokens and training time: its loss (the mean of all processes'),
        learning rate, gradient norm, and the stop signal that all processes act on after it
        (0: none).  stop_signal() gives the one this process has noted (None: none), asked
        once the step's work is done, so that a signal that came during it counts."""
        start = time.perf_counter()
        c, s = self.config, self.state
        if lr is None:
            lr = learning_rate(
                c.lr, s.step, self.budget_progress(), c.warmup_steps, c.schedule, c.min_lr_ratio
            )
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        losses, tokens = [], 0
        for micro in range(c.grad_accum):
            host_batch = self.batches(s.step * c.grad_accum + micro)
            batch = [self.to_device(t) for t in host_batch]
            sync = micro == c.grad_accum - 1
            with self.dist.maybe_no_sync(self.forward_model, sync), self.autocast():
                loss = loss_fn(self.forward_model, batch, c.family, self.teacher)
            self.scaler.scale(loss / c.grad_accum).backward()
            losses.append(loss.detach().float())
            tokens += batch_tokens(host_batch, c.family)  # counted here: no wait for a GPU
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), c.grad_clip if c.grad_clip > 0 else math.inf
        )
        numbers = torch.stack([torch.stack(losses).mean(), grad_norm])
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)
        # The step's one wait for the GPU, with the update already queued behind it: waiting
        # before it would leave the GPU idle while the update is queued.  A non-finite
        # step has then spoilt the weights in memory, and stops the run before anything
        # is saved.
        total_loss, grad_norm = numbers.tolist()
        seconds, tokens, total_loss, signum = self.dist.agree(
            time.perf_counter() - start, tokens, total_loss, stop_signal() or 0
        )
        # on the loss all processes agreed on (one whose own loss alone was not finite would
        # stop while the others waited for it), and the gradient norm, the same in all; in
        # fp16 an infinite norm is an overflow the scaler skipped the step for
        overflow = self.scaler.is_enabled() and math.isfinite(total_loss)
        stop_if_not_finite(
            total_loss, 0.0 if overflow else grad_norm, s.step, self.out / "checkpoints"
        )
        s.step += 1
        s.tokens += tokens
        s.elapsed += seconds
        s.train_loss = total_loss
        if s.step == c.warmup_steps:
            s.warmup_elapsed, s.warmup_tokens = s.elapsed, s.tokens
        return {"loss": total_loss, "lr": lr, "grad_norm": grad_norm, "stop_signal": signum}

    @property
    def trained_model(self) -> torch.nn.Module:
        """The model that evaluation scores and model.pt holds: the weights' moving
        average when ema_decay is set, else the weights as trained."""
        return self.ema.model if self.ema is not None else self.model

    def evaluate(self) -> dict:
        c, metrics = self.config, {}
        for split in c.eval_split_list:
            if c.family == "classifier":
                r = evaluate_classifier(
                    self.trained_model,
                    self.data,
                    split,
                    self.max_length,
                    device=self.device,
                    head_tokens=c.head_tokens,
                    share=self.dist,
                )
                metrics |= {f"{split}/accuracy": r["accuracy"], f"{split}/loss": r["loss"]}
            else:
                r = evaluate_lm(
                    self.trained_model,
                    self.data,
                    split,
                    self.context,
                    device=self.device,
                    max_tokens=c.eval_max_tokens,
                    stride=c.eval_stride,
                    share=self.dist,
                )
                metrics |= {
                    f"{split}/{k}": r[k]
                    for k in ("loss", "bits_per_token", "bits_per_byte", "bits_per_char")
                }
        return metrics

    def run(self) -> dict:
        """Train to the end, then evaluate and write model.pt and summary.json; returns
        the summary."""
        if self.dist.is_main:
            self.config.warn_if_warm_up_outlasts_the_run()
            self.config.warn_if_scored_on_training_data(self.data.fit_on)
        with closed_if_failed(self.tracker):
            try:
                self.train_to_the_end()
            except Exception as error:
                if not out_of_memory(error):
                    raise
                raise FromScratchError(self.out_of_memory_message()) from error
            if self.dist.is_main:
                self.warn_if_the_budget_ended_in_warm_up()
            return self.finish()

    def out_of_memory_message(self) -> str:
        """What a student does when a batch does not fit: the same batch in smaller pieces
        (grad_accum), or the largest that fits, measured."""
        c = self.config
        name, length = (
            ("max_length", self.max_length)
            if c.family == "classifier"
            else ("context", self.context)
        )
        advice = (
            f"train the batch in smaller pieces (batch_size={(c.batch_size + 1) // 2}, "
            f"grad_accum={c.grad_accum * 2}), or find the largest that fits with "
            "`fromscratch batch-size`"
            if c.batch_size > 1
            else f"a shorter {name} or a smaller model"
        )
        return (
            f"out of memory on {self.device.type} at batch_size={c.batch_size} of "
            f"{name}={length} tokens: {advice}"
        )

    def warn_if_the_budget_ended_in_warm_up(self) -> None:
        """A time or token budget can end inside the warm-up, which max_steps alone says
        before the run (TrainConfig.warn_if_warm_up_outlasts_the_run)."""
        c, s = self.config, self.state
        if s.step < c.warmup_steps and not c.warm_up_outlasts_max_steps():
            print(
                f"warning: the run's budget ended at step {s.step}, inside its warm-up "
                f"(warmup_steps={c.warmup_steps}): {c.lr_reached(s.step)}",
                file=sys.stderr,
            )

    def train_to_the_end(self) -> None:
        c, s = self.config, self.state
        bar = tqdm(
            total=c.max_steps or None,
            initial=s.step,
            disable=not self.show_bar,
            unit="step",
            dynamic_ncols=True,
        )
        # tokens/s over the training steps since the last log line: evaluation and
        # checkpoints are not training time
        window_elapsed, window_tokens = s.elapsed, s.tokens
        with StopSignals() as signals, bar:
            while not self.done():
                metrics = self.train_step(stop_signal=lambda: signals.pending)
                signum = metrics.pop("stop_signal")
                bar.update(1)
                if s.step % c.log_every == 0 or self.done():
                    seconds = max(s.elapsed - window_elapsed, 1e-9)
                    tokens_per_s = (s.tokens - window_tokens) / seconds
                    metrics |= {
                        "tokens": s.tokens,
                        "tokens_per_s": tokens_per_s,
                        "elapsed_s": s.elapsed,
                    }
                    self.tracker.log(metrics, s.step)
                    bar.set_postfix(loss=f"{metrics['loss']:.3f}", tok_s=f"{tokens_per_s:,.0f}")
                    window_elapsed, window_tokens = s.elapsed, s.tokens
                evaluating = c.eval_every and c.eval_split_list  # no splits: nothing to log
                if evaluating and s.step % c.eval_every == 0 and not self.done():
                    self.tracker.log({**self.evaluate(), "tokens": s.tokens}, s.step)
                # after the last step too, before the final evaluation: a run stopped from
                # here on resumes at this step and only evaluates again, logging that once
                if (c.checkpoint_every and s.step % c.checkpoint_every == 0) or self.done():
                    self.save_checkpoint()
                signals.checkpoint_if_asked(self.save_checkpoint, s.step, signum)

    def finish(self) -> dict:
        """The final evaluation, model.pt, summary.json, and last the mark of a finished
        run: a run stopped before that mark resumes from its last checkpoint instead of
        training again."""
        s = self.state
        final = self.evaluate()
        if final:  # with the tokens seen: a curve against tokens places it there
            self.tracker.log({**final, "tokens": s.tokens}, s.step)
        self.save_model()
        summary = {
            "steps": s.step,
            "tokens": s.tokens,
            "train_time_s": s.elapsed,
            "tokens_per_s": s.tokens / max(s.elapsed, 1e-9),
            "final_train_loss": s.train_loss,
            "parameters": self.model.num_parameters(),
            "device": str(self.device),
            **final,
        }
        self.dist.close()
        written = self.tracker.finish(summary, self.config_dict())
        if self.dist.is_main:
            checkpoint.mark_finished(self.out / "checkpoints")
        return written

    def save_model(self) -> None:
        """The final weights with their config: what `sample` and `evaluate` load."""
        if not self.dist.is_main:
            return
        with atomic_path(self.out / "model.pt") as tmp:
            torch.save(
                {
                    "model": self.trained_model.state_dict(),
                    "config": self.config_dict(),
                    "data": self.config.data,
                    # what its token ids mean, to check other data it is given later
                    "data_tokenizer": tokenizers.fingerprint(self.data.tokenizer),
                },
                tmp,
            )


def train(config: TrainConfig, out: str | Path, resume: bool = False, **kwargs) -> dict:
    with checkpoint.sole_run(out, owner=is_first_process()):
        return Trainer(config, out, resume=resume, **kwargs).run()
