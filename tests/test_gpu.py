"""On a CUDA GPU: the fast path, KV-cache sampling, training in each precision, compiled
training, resuming, and a GPU-trained model sampled on the CPU.

Skipped where there is no GPU (CI has none); `bash benchmarks/gpu.sh` runs them before
the GPU benchmark.  Every other test runs on the CPU, so these are the ones that say the
code a cluster job runs on its GPU works there.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from fromscratch.models import GPT, GPTConfig
from fromscratch.train import TrainConfig, Trainer, train
from fromscratch.train.models import load_model

from .conftest import tiny_gpt

DEVICE = "cuda"
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


def small_gpt(**overrides) -> GPT:
    config = dict(vocab_size=64, context=128, n_layer=2, n_head=4, n_embd=64, dropout=0.0)
    torch.manual_seed(0)
    return GPT(GPTConfig(**{**config, **overrides})).to(DEVICE)


@pytest.mark.parametrize("position", ["learned", "rope", "alibi", "relative"])
def test_fast_path_matches_the_plain_code_on_the_gpu(position):
    """fp32, TF32 off (PyTorch's default for matmuls): the fused attention kernel and the
    lecture's code agree to 1e-4 in logits and gradients."""
    plain = small_gpt(position=position, fast=False)
    fast = small_gpt(position=position, fast=True)
    fast.load_state_dict(plain.state_dict())
    idx = torch.randint(0, 64, (4, 128), device=DEVICE)
    outputs = []
    for model in (plain, fast):
        logits = model(idx)
        logits.square().mean().backward()
        outputs.append((logits, {n: p.grad for n, p in model.named_parameters()}))
    (plain_logits, plain_grads), (fast_logits, fast_grads) = outputs
    torch.testing.assert_close(fast_logits, plain_logits, atol=1e-4, rtol=1e-4)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, atol=1e-4, rtol=1e-4, msg=name)


@pytest.mark.parametrize("fast", [False, True])
def test_kv_cache_sampling_gives_the_same_tokens_on_the_gpu(fast):
    model = small_gpt(fast=fast, context=32).eval()
    prompt = torch.randint(0, 64, (3, 5), device=DEVICE)
    runs = [
        model.generate(
            prompt,
            40,  # past the context window
            use_cache=use_cache,
            top_k=20,
            generator=torch.Generator(DEVICE).manual_seed(7),
        )
        for use_cache in (True, False)
    ]
    assert runs[0].device.type == DEVICE and runs[0].shape == (3, 45)
    assert torch.equal(runs[0], runs[1])


@pytest.mark.parametrize(
    "precision, compile",
    [("fp32", False), ("bf16", False), ("fp16", False), ("bf16", True)],
)
def test_training_on_the_gpu_learns_and_samples_on_the_cpu(
    demo_chars, tmp_path, precision, compile
):
    config = TrainConfig.from_dict(
        tiny_gpt(demo_chars, max_steps=60, device=DEVICE, precision=precision, compile=compile)
    )
    summary = train(config, tmp_path)
    assert summary["device"].startswith(DEVICE)
    losses = [x["loss"] for x in _metrics(tmp_path) if "loss" in x]
    assert len(losses) == 60 and losses[-1] < losses[0] - 0.5, losses
    model, _ = load_model(str(tmp_path / "model.pt"))  # on the CPU, as `fromscratch sample`
    assert next(model.parameters()).device.type == "cpu"
    ids = model.eval().generate(torch.zeros(1, 1, dtype=torch.long), 10)
    assert ids.shape == (1, 11)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_resuming_on_the_gpu_continues_the_run(demo_chars, tmp_path, precision):
    """Stopped at step 10 and resumed: the same weights as a run that never stopped, to
    within what the GPU's non-deterministic kernels (atomic adds in the backward) allow;
    with fp16, the loss scaler's state comes back too."""
    config = TrainConfig.from_dict(
        tiny_gpt(demo_chars, dropout=0.1, max_steps=20, device=DEVICE, precision=precision)
    )
    straight = Trainer(config, tmp_path / "straight", progress_bar=False)
    while not straight.done():
        straight.train_step()

    first = Trainer(config, tmp_path / "stopped", progress_bar=False)
    for _ in range(10):
        first.train_step()
    first.save_checkpoint()
    scale = first.scaler.get_scale() if precision == "fp16" else None
    resumed = Trainer(config, tmp_path / "stopped", resume=True, progress_bar=False)
    assert resumed.state.step == 10
    if scale is not None:
        assert resumed.scaler.get_scale() == scale
    while not resumed.done():
        resumed.train_step()

    other_seed = Trainer(replace(config, seed=2), tmp_path / "other", progress_bar=False)
    while not other_seed.done():
        other_seed.train_step()

    def largest_difference(a: Trainer, b: Trainer) -> float:
        return max(
            (p - q).abs().max().item()
            for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True)
        )

    resume_gap = largest_difference(straight, resumed)
    seed_gap = largest_difference(straight, other_seed)
    print(f"{precision}: resumed vs straight {resume_gap:.2e}, another seed {seed_gap:.2e}")
    assert seed_gap > 0.05  # what a run that did not resume its state would look like
    assert resume_gap < 1e-3


def _metrics(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_the_batch_size_search_measures_the_gpu_it_trains_on(demo_chars):
    """Peak memory read from the config's GPU (the last one here: cuda:1 where there are
    two), not the current one, and larger for a larger batch."""
    from fromscratch.train.batch_size import measure

    gpu = f"cuda:{torch.cuda.device_count() - 1}"
    config = TrainConfig.from_dict(tiny_gpt(demo_chars, device=gpu, eval_splits=""))
    (small, small_mb), (large, large_mb) = (measure(config, size) for size in (2, 64))
    assert small is not None and large is not None
    assert 0 < small_mb < large_mb
