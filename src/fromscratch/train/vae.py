"""Training and probing a sentence VAE (models/vae.py) on labelled sentences.

    sentences_of(data, split, count, max_tokens) -> Sentences (token ids, labels, texts)
    train_vae(model, train, test, config, out) -> summary

The objective is the ELBO, not the Trainer's cross-entropy, so the loop is its own, short
one; it reuses the project's optimizer, LR schedule and tracker. Each step:

    beta = kl_weight(step)                    # constant, linear warm-up, or cyclical
    recon = -log p(x | z), z ~ q(z | x)       # nats per sentence
    loss = recon + beta * free_bits_kl(KL)    # KL clamped per dimension

After training: reconstruction and KL over the test sentences, active units, a linear
probe of the label from mu, and texts (reconstructions, interpolations between two
sentences, and sentences moved along the label direction in z).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fromscratch import FromScratchError
from fromscratch.data import PreparedData
from fromscratch.io import atomic_path, write_json
from fromscratch.models.common import evaluating
from fromscratch.models.vae import SentenceVAE, free_bits_kl, gaussian_kl
from fromscratch.train import checkpoint
from fromscratch.train.batches import keyed_rng
from fromscratch.train.config import OptimizerConfig
from fromscratch.train.loop import StopSignals, closed_if_failed, pick_device, stop_if_not_finite
from fromscratch.train.schedule import learning_rate, step_progress

KL_SCHEDULES = ("constant", "linear", "cyclical")
ACTIVE_UNIT_VARIANCE = 0.01  # Burda et al. 2016: a unit is active if Var_x(E[z_u | x]) > 0.01
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


# --------------------------------------------------------------------------- sentences


@dataclasses.dataclass
class Sentences:
    ids: list[np.ndarray]  # token ids of each sentence
    labels: np.ndarray  # the label of the review each sentence comes from
    texts: list[str]
    reviews: list[int] = dataclasses.field(default_factory=list)  # which review each is of


PER_REVIEW = 2  # sentences of one review at most


def split_sentences(text: str) -> list[str]:
    """A review's sentences: cut after . ! or ? followed by white space (HTML breaks too)."""
    text = text.replace("<br />", " ")
    return [s.strip() for s in SENTENCE_END.split(text) if s.strip()]


def sentences_of(
    data: PreparedData,
    split: str,
    count: int,
    max_tokens: int,
    seed: int = 0,
    leave_out: frozenset[str] = frozenset(),
) -> Sentences:
    """Up to `count` sentences of 2 to max_tokens tokens from the reviews of `split`, taken
    review by review in a random order (fixed by `seed`), each with its review's label: as
    many of each label (so that a probe's chance rate is one over the labels, not whatever
    the first reviews drawn happen to hold) and at most PER_REVIEW of one review (so that
    they come from many reviews).

    Longer sentences are left out rather than cut: a cut sentence would teach the decoder
    endings that are not there.  So are those whose text is in `leave_out`, the training
    sentences for a test set: short ones recur word for word across reviews ("10/10",
    "Avoid at all costs."), and a test sentence seen in training scores memory, and often
    gives its label away.
    """
    if data.meta["task"] != "classification":
        raise FromScratchError(f"{data.folder}: sentences need a labelled (classification) set")
    tokenizer, labels = data.tokenizer, data.labels(split)
    tokens, offsets = data.tokens(split), data.offsets(split)  # read once, not a review at a time
    classes = np.unique(labels)
    quota = {
        int(c): count // len(classes) + (i < count % len(classes)) for i, c in enumerate(classes)
    }
    picked = Sentences([], [], [])
    for review in np.random.default_rng(seed).permutation(len(labels)):
        label = int(labels[review])
        if not quota[label]:
            continue
        texts = split_sentences(tokenizer.decode(tokens[offsets[review] : offsets[review + 1]]))
        taken = 0
        for text, ids in zip(texts, tokenizer.encode_batch(texts), strict=True):
            fits = 2 <= len(ids) <= max_tokens and text not in leave_out
            if fits and quota[label] and taken < PER_REVIEW:
                picked.ids.append(np.asarray(ids, dtype=np.int64))
                picked.labels.append(label)
                picked.texts.append(text)
                picked.reviews.append(int(review))
                quota[label] -= 1
                taken += 1
        if not any(quota.values()):
            break
    picked.labels = np.asarray(picked.labels, dtype=np.int64)
    return picked


def collate(ids: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded token ids (B, T) and the mask (B, T) of real tokens."""
    width = max(len(x) for x in ids)
    idx = np.zeros((len(ids), width), dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=bool)
    for row, x in enumerate(ids):
        idx[row, : len(x)], mask[row, : len(x)] = x, True
    return torch.from_numpy(idx), torch.from_numpy(mask)


# --------------------------------------------------------------------------- the objective


def kl_weight(
    step: int, steps: int, schedule: str = "cyclical", cycles: int = 4, ramp: float = 0.5
) -> float:
    """beta at `step` of `steps`.

    constant  1 throughout (the plain ELBO);
    linear    0 -> 1 over the first `ramp` of training, then 1 (Bowman et al. 2016);
    cyclical  training split into `cycles` equal periods, each rising 0 -> 1 over its
              first `ramp` and then staying at 1 (Fu et al. 2019).
    """
    if schedule == "constant":
        return 1.0
    if schedule == "linear":
        return min(1.0, step / (ramp * steps))
    if schedule == "cyclical":
        period = math.ceil(steps / cycles)
        return min(1.0, (step % period) / (ramp * period))
    raise FromScratchError(f"kl schedule {schedule!r} is not one of {', '.join(KL_SCHEDULES)}")


def elbo_terms(
    model: SentenceVAE,
    idx: torch.Tensor,
    mask: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed reconstruction NLL (nats), per-dimension KL (B, D) in nats, and mu (B, D)."""
    logits, mu, logvar = model(idx, mask, generator)
    targets = idx.masked_fill(~mask, -1)
    recon = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        targets.reshape(-1),
        ignore_index=-1,
        reduction="sum",
    )
    return recon, gaussian_kl(mu, logvar), mu


@dataclasses.dataclass
class VAETrainConfig(OptimizerConfig):
    """max_steps of batch_size sentences, with the optimizer and schedule of
    OptimizerConfig; kl_schedule (constant | linear | cyclical) with cycles and ramp
    (see kl_weight); free_bits: nats per latent dimension (0: off).  examples: test
    sentences reconstructed and moved along the label direction."""

    warmup_steps: int = 50
    weight_decay: float = 0.0
    eval_every: int = 100
    kl_schedule: str = "cyclical"
    cycles: int = 4
    ramp: float = 0.5
    free_bits: float = 0.0
    examples: int = 200
    job_type: str = "sentence-vae"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_positive("max_steps", "cycles", "examples")
        self._check_choice("kl_schedule", KL_SCHEDULES)
        if self.kl_schedule == "cyclical" and self.cycles >= self.max_steps:
            self._fail(
                "cycles",
                f"{self.cycles} must be fewer than max_steps={self.max_steps} "
                "(a cycle of one step keeps the KL weight at 0)",
            )
        if not 0 < self.ramp <= 1:
            self._fail("ramp", f"{self.ramp!r} must be in (0, 1]")
        if self.free_bits < 0:
            self._fail("free_bits", f"{self.free_bits!r} must be at least 0")


# --------------------------------------------------------------------------- training


def train_vae(
    model: SentenceVAE,
    train: Sentences,
    test: Sentences,
    config: VAETrainConfig,
    out: str | Path,
    tokenizer,
    run_config: dict,
    resume: bool = False,
) -> dict:
    """Train the adapters of `model`, then evaluate and probe it; writes into `out`:
    metrics.jsonl, summary.json, examples.json, latents.npz (test mu and labels),
    adapters.pt, and checkpoints/ (every checkpoint_every steps, after the last step, and on
    SIGTERM/SIGUSR2/SIGHUP).
    tokenizer: the GPT's, to turn generated ids into text and back.  resume: continue
    from the newest checkpoint of the same run_config."""
    c, out = config, Path(out)
    device = pick_device(c.device)
    torch.manual_seed(c.seed)
    model.to(device).train()
    optimizer = model.configure_optimizer(
        c.weight_decay, c.lr, (c.beta1, c.beta2), fused=device.type in ("cpu", "cuda")
    )
    noise = torch.Generator(device).manual_seed(c.seed)  # the reparameterisation's draws
    step = 0
    saved = checkpoint.resume_from(out / "checkpoints", run_config, resume)
    if saved is not None:
        model.load_trainable_state(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        checkpoint.set_rng_state(saved["rng"])
        noise.set_state(saved["noise"])
        step = saved["step"]
    tracker = c.tracker(out, run_config, saved, ("latents.npz", "adapters.pt", "examples.json"))
    c.warn_if_warm_up_outlasts_the_run()

    def save_checkpoint() -> None:
        state = {
            "model": model.trainable_state(),
            "optimizer": optimizer.state_dict(),
            "rng": checkpoint.rng_state(),
            "noise": noise.get_state(),
            "step": step,
            **tracker.checkpoint_state(),
            "config": run_config,
        }
        checkpoint.save(out / "checkpoints", state, keep=c.keep_checkpoints)

    with closed_if_failed(tracker):  # a failed or stopped run ends so in W&B too
        with StopSignals() as signals:
            while step < c.max_steps:
                progress = step_progress(step, c.max_steps, c.warmup_steps)
                lr = learning_rate(c.lr, step, progress, c.warmup_steps, c.schedule, c.min_lr_ratio)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                beta = kl_weight(step, c.max_steps, c.kl_schedule, c.cycles, c.ramp)
                rows = keyed_rng(c.seed, step).integers(0, len(train.ids), size=c.batch_size)
                idx, mask = (t.to(device) for t in collate([train.ids[r] for r in rows]))
                recon, kl, _ = elbo_terms(model, idx, mask, noise)
                recon = recon / c.batch_size  # nats per sentence
                loss = recon + beta * free_bits_kl(kl, c.free_bits)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                clip = c.grad_clip if c.grad_clip > 0 else math.inf
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip).item()
                stop_if_not_finite(loss.item(), grad_norm, step, out / "checkpoints")
                optimizer.step()
                step += 1
                if step % c.log_every == 0 or step == c.max_steps:
                    tracker.log(
                        {
                            "loss": loss.item(),
                            "recon": recon.item(),
                            "kl": kl.sum(dim=1).mean().item(),
                            "beta": beta,
                            "lr": lr,
                            "grad_norm": grad_norm,
                        },
                        step,
                    )
                if c.eval_every and step % c.eval_every == 0 and step < c.max_steps:
                    test_metrics = evaluate_vae(model, test)
                    tracker.log({f"test/{k}": v for k, v in test_metrics.items()}, step)
                # after the last step too: a run stopped in the final evaluation or the
                # probe resumes here
                if (c.checkpoint_every and step % c.checkpoint_every == 0) or step == c.max_steps:
                    save_checkpoint()
                signals.checkpoint_if_asked(save_checkpoint, step)
        final = evaluate_vae(model, test)
        tracker.log({f"test/{k}": v for k, v in final.items()}, c.max_steps)
        probe = probe_and_examples(model, train, test, c.examples, tokenizer)
        mu_test = encode_all(model, test)
        with atomic_path(out / "latents.npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, mu=mu_test.cpu().numpy(), labels=test.labels)
        with atomic_path(out / "adapters.pt") as tmp:
            torch.save({"model": model.trainable_state(), "config": run_config}, tmp)
        write_json(out / "examples.json", probe.pop("examples"))
        summary = {
            "steps": c.max_steps,
            "train_sentences": len(train.ids),
            "test_sentences": len(test.ids),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "device": str(device),
            **{f"test/{k}": v for k, v in final.items()},
            **probe,
        }
        written = tracker.finish(summary, run_config)
    # last: a run stopped before this mark resumes from its last checkpoint, not afresh
    checkpoint.mark_finished(out / "checkpoints")
    return written


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def encode_all(model: SentenceVAE, data: Sentences, batch_size: int = 256) -> torch.Tensor:
    """mu (N, D) of every sentence."""
    device = next(model.parameters()).device
    mus = []
    with evaluating(model):
        for i in range(0, len(data.ids), batch_size):
            idx, mask = (t.to(device) for t in collate(data.ids[i : i + batch_size]))
            mus.append(model.encode(idx, mask)[0])
    return torch.cat(mus)


@torch.no_grad()
def evaluate_vae(model: SentenceVAE, data: Sentences, batch_size: int = 256) -> dict:
    """Over all sentences: reconstruction NLL (nats per sentence, and bits per token, with
    one z ~ q(z|x) per sentence, the same draws every time), KL (nats per sentence), the
    negative ELBO, and the active units of mu (Burda et al. 2016)."""
    device = next(model.parameters()).device
    noise = torch.Generator(device).manual_seed(0)
    recon, kl, tokens, mus = 0.0, 0.0, 0, []
    with evaluating(model):
        for i in range(0, len(data.ids), batch_size):
            idx, mask = (t.to(device) for t in collate(data.ids[i : i + batch_size]))
            r, k, mu = elbo_terms(model, idx, mask, noise)
            recon, kl, tokens = recon + r.item(), kl + k.sum().item(), tokens + int(mask.sum())
            mus.append(mu)
    n = len(data.ids)
    return {
        "recon": recon / n,
        "kl": kl / n,
        "neg_elbo": (recon + kl) / n,
        "recon_bits_per_token": recon / tokens / math.log(2),
        "active_units": active_units(torch.cat(mus)),
    }


def active_units(mu: torch.Tensor) -> int:
    """How many of the D latent dimensions of mu (N, D) vary across sentences: a unit whose
    mean hardly moves with x carries nothing about it, however wide its sigma."""
    return int((mu.var(dim=0) > ACTIVE_UNIT_VARIANCE).sum())


def linear_probe(
    x_train: torch.Tensor, y_train: np.ndarray, l2: float = 1e-3, steps: int = 100
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logistic regression (L-BFGS, L2 penalty) on standardised features: returns
    predict(x) as (weights, bias) acting on raw x, so that logit = x @ w + b."""
    x = x_train.double().cpu()
    y = torch.as_tensor(y_train, dtype=torch.float64)
    mean, std = x.mean(dim=0), x.std(dim=0).clamp(min=1e-6)
    xs = (x - mean) / std
    w = torch.zeros(x.size(1), dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(xs @ w + b, y) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    w_raw = (w / std).detach()
    return w_raw, (b - (mean * w_raw).sum()).detach()


def probe_accuracy(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: np.ndarray) -> float:
    predicted = ((x.double().cpu() @ w + b) > 0).long().numpy()
    return float((predicted == y).mean())


def cut_sentence(text: str) -> str:
    """Generated text up to its first sentence end (decoding always runs max_tokens)."""
    match = re.search(r"[.!?]", text)
    return text[: match.end()] if match else text


@torch.no_grad()
def probe_and_examples(
    model: SentenceVAE, train: Sentences, test: Sentences, count: int, tokenizer
) -> dict:
    """Is the label linearly readable from mu, and does moving z along it change it?

    probe_accuracy: logistic regression trained on train mu, tested on test mu.
    The label direction d = mean mu of positive - mean mu of negative train sentences.
    For `count` test sentences: greedy reconstruction from mu, and a swap, decoded from
    mu - d (positive) or mu + d (negative).  swap_flip_rate: the share of sentences whose
    reconstruction the probe reads (from its own mu) as the sentence's label and whose swap
    as the other one: what the swap changed, not what the probe gets wrong anyway (a
    collapsed posterior, every swap its reconstruction, flips nothing); *_similarity:
    difflib's ratio of characters with the original sentence (1 = the same text), how much
    content is kept.
    """
    mu_train, mu_test = encode_all(model, train), encode_all(model, test)
    w, b = linear_probe(mu_train, train.labels)
    majority = float(max(test.labels.mean(), 1 - test.labels.mean()))
    positive = torch.as_tensor(train.labels == 1, device=mu_train.device)
    direction = mu_train[positive].mean(dim=0) - mu_train[~positive].mean(dim=0)
    max_tokens = max(len(x) for x in test.ids)

    def decode(z: torch.Tensor) -> list[str]:
        with evaluating(model):
            ids = model.generate(z, max_tokens).tolist()
        # the document separator ends a sentence too; as text ("<|endoftext|>") it would be
        # none of the sentence's, nor characters a chars vocabulary reads back
        ids = [x[: x.index(tokenizer.eot)] if tokenizer.eot in x else x for x in ids]
        return [cut_sentence(tokenizer.decode(x)) for x in ids]

    def relabel(texts: list[str]) -> np.ndarray:
        """The probe's label of each text, read from the text's own mu."""
        ids = [np.asarray(x, np.int64)[:max_tokens] for x in tokenizer.encode_batch(texts)]
        ids = [x if len(x) else np.zeros(1, np.int64) for x in ids]  # an empty text: one token
        mu = encode_all(model, Sentences(ids, np.zeros(len(ids)), texts))
        return ((mu.double().cpu() @ w + b) > 0).long().numpy()

    labels = test.labels[:count]
    mu = mu_test[:count]
    reconstructions = decode(mu)
    swaps = decode(swapped(mu, labels, direction))
    originals = test.texts[:count]
    flipped = (relabel(reconstructions) == labels) & (relabel(swaps) != labels)
    pairs = _interpolation_pairs(test.labels, 4)
    steps = torch.linspace(0, 1, 5, device=mu_test.device)
    interpolations = [
        decode((1 - steps[:, None]) * mu_test[i] + steps[:, None] * mu_test[j]) for i, j in pairs
    ]
    prior = decode(torch.randn(5, mu_test.size(1), device=mu_test.device))
    return {
        "probe_accuracy": probe_accuracy(w, b, mu_test, test.labels),
        "probe_train_accuracy": probe_accuracy(w, b, mu_train, train.labels),
        "majority_accuracy": majority,
        "direction_norm": float(direction.norm()),
        "reconstruction_exact": float(
            np.mean([r == o for r, o in zip(reconstructions, originals, strict=True)])
        ),
        "reconstruction_similarity": _similarity(reconstructions, originals),
        "swap_flip_rate": float(flipped.mean()),
        "swap_similarity": _similarity(swaps, originals),
        "examples": {
            "reconstructions": [
                {"text": o, "label": int(y), "reconstruction": r, "swapped": s, "flipped": bool(f)}
                for o, y, r, s, f in zip(
                    originals, labels, reconstructions, swaps, flipped, strict=True
                )
            ],
            "interpolations": [
                {"from": test.texts[i], "to": test.texts[j], "steps": texts}
                for (i, j), texts in zip(pairs, interpolations, strict=True)
            ],
            "prior_samples": prior,
        },
    }


def swapped(mu: torch.Tensor, labels: np.ndarray, direction: torch.Tensor) -> torch.Tensor:
    """mu (N, D) moved across the label boundary: positive sentences (label 1) by
    -direction, negative ones by +direction (direction: from the negative mean to the
    positive one)."""
    toward_other = np.where(labels == 1, -1.0, 1.0)
    return mu + torch.as_tensor(toward_other, device=mu.device, dtype=mu.dtype)[:, None] * direction


def _similarity(a: list[str], b: list[str]) -> float:
    return float(
        np.mean([difflib.SequenceMatcher(None, x, y).ratio() for x, y in zip(a, b, strict=True)])
    )


def _interpolation_pairs(labels: np.ndarray, count: int) -> list[tuple[int, int]]:
    """The first `count` (negative, positive) test sentence pairs, in order."""
    negative, positive = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    return [(int(i), int(j)) for i, j in zip(negative[:count], positive[:count], strict=False)]
