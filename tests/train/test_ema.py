"""The moving average of the weights: its arithmetic, what a run evaluates and saves with
it, and that a resumed run continues the average exactly."""

import shutil

import pytest
import torch
from torch import nn

from fromscratch import FromScratchError
from fromscratch.train import TrainConfig, Trainer, checkpoint, train
from fromscratch.train.ema import EMA
from fromscratch.train.evaluate import evaluate_lm
from fromscratch.train.models import load_model

from ..conftest import tiny_gpt


def test_the_average_follows_the_weights_with_a_ramped_decay():
    model = nn.Linear(3, 2)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    ema = EMA(model, decay=0.99)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)  # decay min(0.99, 2/11): the average moves 9/11 of the way
    for name, p in ema.model.state_dict().items():
        torch.testing.assert_close(p, start[name] + 9 / 11, rtol=0, atol=1e-6)
    for _ in range(2000):  # the ramp ends at 0.99 and the average reaches the weights
        ema.update(model)
    assert ema.current_decay() == 0.99
    for name, p in ema.model.state_dict().items():
        torch.testing.assert_close(p, start[name] + 1, rtol=0, atol=1e-6)
    assert not any(p.requires_grad for p in ema.model.parameters())


def test_tied_weights_stay_tied_in_the_average(demo_chars, tmp_path):
    trainer = Trainer(TrainConfig.from_dict(tiny_gpt(demo_chars, ema_decay=0.9)), tmp_path)
    assert trainer.ema.model.lm_head.weight is trainer.ema.model.wte.weight


def test_a_run_with_ema_evaluates_and_saves_the_average(demo_chars, tmp_path):
    config = TrainConfig.from_dict(tiny_gpt(demo_chars, max_steps=20, ema_decay=0.9))
    trainer = Trainer(config, tmp_path)
    summary = trainer.run()
    saved = torch.load(tmp_path / "model.pt", weights_only=False)["model"]
    for name, p in trainer.ema.model.state_dict().items():
        assert torch.equal(saved[name], p)
    assert not torch.equal(saved["wte.weight"], trainer.model.wte.weight.detach())

    def test_loss(model):
        return evaluate_lm(
            model, trainer.data, "test", trainer.context, max_tokens=config.eval_max_tokens
        )["loss"]

    assert summary["test/loss"] == pytest.approx(test_loss(trainer.ema.model))
    assert summary["test/loss"] != pytest.approx(test_loss(trainer.model))
    # a checkpoint, evaluated or sampled as a model, is the average too, as model.pt is
    trainer.save_checkpoint()
    (last,) = checkpoint.list_checkpoints(tmp_path / "checkpoints")[-1:]
    from_checkpoint, _ = load_model(str(last))
    for name, p in from_checkpoint.state_dict().items():
        assert torch.equal(saved[name], p), name


def test_resume_continues_the_average_exactly(demo_chars, tmp_path, capsys):
    config = TrainConfig.from_dict(
        tiny_gpt(demo_chars, max_steps=12, checkpoint_every=6, keep_checkpoints=5, ema_decay=0.9)
    )
    train(config, tmp_path / "straight")
    resumed = tmp_path / "resumed" / "checkpoints"
    shutil.copytree(tmp_path / "straight" / "checkpoints", resumed)
    # As if stopped after its step-6 checkpoint: without the newer checkpoint and the mark
    # of a finished run (with it, the run would start afresh and still match).
    (resumed / "step-00000012.pt").unlink()
    (resumed / "finished").unlink()
    capsys.readouterr()
    train(config, tmp_path / "resumed", resume=True)
    assert f"resuming from step 6 ({resumed / 'step-00000006.pt'})" in capsys.readouterr().err
    a = torch.load(tmp_path / "straight" / "model.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "resumed" / "model.pt", weights_only=False)["model"]
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("decay", [-0.1, 1.0])
def test_a_decay_outside_zero_one_names_the_key(demo_chars, decay):
    with pytest.raises(FromScratchError, match="ema_decay"):
        TrainConfig.from_dict(tiny_gpt(demo_chars, ema_decay=decay))


def test_buffers_are_copied_not_averaged():
    """A buffer is no learned weight (a mask, a running statistic): the average holds the
    model's own, whatever the decay."""
    model = nn.Linear(3, 2)
    model.register_buffer("statistic", torch.zeros(4))
    ema = EMA(model, decay=0.99)
    model.statistic.fill_(5.0)
    ema.update(model)
    assert torch.equal(ema.model.statistic, torch.full((4,), 5.0))
    model.statistic.fill_(-1.0)
    ema.update(model)
    assert torch.equal(ema.model.statistic, torch.full((4,), -1.0))
