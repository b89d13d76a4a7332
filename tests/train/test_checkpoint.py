"""One training step clips the gradient (and logs its norm before clipping); a resume
skips a damaged newest checkpoint; only the newest keep_checkpoints checkpoints stay."""

import copy
import errno
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from fromscratch import FromScratchError
from fromscratch.train import TrainConfig, Trainer, checkpoint, train
from fromscratch.train.loop import loss_fn

from ..conftest import tiny_gpt


@pytest.mark.parametrize("grad_clip", [0.05, 0.0], ids=["clipped", "0: no clipping"])
def test_a_step_logs_the_norm_before_clipping_and_takes_the_clipped_gradient(
    demo_chars, tmp_path, grad_clip
):
    spec = tiny_gpt(demo_chars, dropout=0.0, grad_clip=grad_clip, eval_splits="")
    trainer = Trainer(TrainConfig.from_dict(spec), tmp_path)
    # Plain SGD, so that the update is -lr × the gradient it is given: AdamW's first step
    # is about lr × sign(gradient), the same whether the gradient was clipped or not.
    lr = 0.1
    trainer.optimizer = torch.optim.SGD(trainer.model.parameters(), lr=lr)

    # the gradient of the step's batch (batch 0), worked out here on a copy of the model
    reference = copy.deepcopy(trainer.model)
    loss_fn(reference, list(trainer.batches(0)), trainer.config.family).backward()
    gradients = {name: p.grad for name, p in reference.named_parameters()}
    norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in gradients.values()]))
    assert norm > 10 * 0.05  # clipping has something to do

    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    logged = trainer.train_step(lr=lr)
    assert logged["grad_norm"] == pytest.approx(norm.item(), rel=1e-5)  # before clipping
    for name, p in trainer.model.named_parameters():
        clipped = gradients[name] * (grad_clip / norm if grad_clip else 1.0)
        torch.testing.assert_close(p.detach(), before[name] - lr * clipped, rtol=1e-4, atol=1e-7)


def test_an_fp16_step_clips_and_logs_the_unscaled_gradient(demo_chars, tmp_path):
    # the loss scaler multiplies the gradient by 65,536 for the backward pass: the norm
    # logged and held to grad_clip is that of the gradient once divided back
    def first_norm(precision: str) -> float:
        spec = tiny_gpt(demo_chars, dropout=0.0, precision=precision, eval_splits="")
        return Trainer(TrainConfig.from_dict(spec), tmp_path / precision).train_step()["grad_norm"]

    assert first_norm("fp16") == pytest.approx(first_norm("fp32"), rel=0.02)
    # the step taken is the clipped one: with plain SGD, an update of lr × grad_clip in all
    spec = tiny_gpt(demo_chars, dropout=0.0, precision="fp16", grad_clip=0.05, eval_splits="")
    trainer = Trainer(TrainConfig.from_dict(spec), tmp_path / "clipped")
    trainer.optimizer = torch.optim.SGD(trainer.model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    assert trainer.train_step(lr=0.1)["grad_norm"] > 10 * 0.05  # clipping has work to do
    moved = [
        (p.detach() - b).norm() for p, b in zip(trainer.model.parameters(), before, strict=True)
    ]
    assert torch.stack(moved).norm().item() == pytest.approx(0.1 * 0.05, rel=0.02)


def test_a_checkpoint_that_fails_half_written_leaves_the_earlier_one_alone(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    checkpoint.save(folder, {"step": 1, "weights": torch.zeros(10)})

    def disk_full_half_way(state, path):
        Path(path).write_bytes(b"PK\x03\x04 half a zip")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full_half_way)
    with pytest.raises(FromScratchError, match=r"step-00000002\.pt: cannot be written: No space"):
        checkpoint.save(folder, {"step": 2, "weights": torch.ones(10)})
    assert [p.name for p in folder.iterdir()] == ["step-00000001.pt"]


@pytest.mark.parametrize(
    "change, resumes",
    [({"wandb_mode": "offline", "log_every": 5}, True), ({"lr": 1e-2}, False)],
    ids=["watching", "training"],
)
def test_a_studys_nested_training_config_resumes_when_only_the_watching_changed(
    tmp_path, change, resumes
):
    folder = tmp_path / "checkpoints"
    study = {"vae": {"latent": 8}, "train": {"lr": 1e-3, "wandb_mode": "disabled", "log_every": 10}}
    checkpoint.save(folder, {"step": 40, "config": study})
    rerun = study | {"train": study["train"] | change}
    saved = checkpoint.resume_from(folder, rerun, resume=True)
    assert (saved is not None) is resumes
    assert (tmp_path / "checkpoints.stale-1").exists() is not resumes


def test_a_run_of_a_changed_config_names_the_settings_that_changed(tmp_path, capsys):
    folder = tmp_path / "checkpoints"
    study = {"vae": {"latent": 8}, "train": {"lr": 1e-3, "log_every": 10}, "seed": 0}
    checkpoint.save(folder, {"step": 40, "config": study})
    rerun = {"vae": {"latent": 16}, "train": {"lr": 3e-3, "log_every": 5}, "seed": 0, "new": 1}
    assert checkpoint.resume_from(folder, rerun, resume=True) is None
    assert capsys.readouterr().err == (
        "checkpoints of a different config (new, train.lr, vae.latent changed) moved to "
        f"{tmp_path / 'checkpoints.stale-1'}; starting afresh\n"
    )


def cut_short(path: Path) -> str:
    path.write_bytes(path.read_bytes()[:1000])  # as by a full disk
    return "cut short, or not a checkpoint"


def one_bit_flipped(path: Path) -> str:
    """In the middle of the largest tensor's bytes, which torch.load would take as they are."""
    with zipfile.ZipFile(path) as archive:
        tensors = [member for member in archive.infolist() if "/data/" in member.filename]
    largest = max(tensors, key=lambda member: member.file_size)
    raw = bytearray(path.read_bytes())
    header = largest.header_offset  # its local header: 30 bytes, then its name and extra
    name_length, extra_length = struct.unpack("<HH", raw[header + 26 : header + 30])
    raw[header + 30 + name_length + extra_length + largest.file_size // 2] ^= 0x10
    path.write_bytes(raw)
    return f"{largest.filename} fails its checksum"


@pytest.mark.parametrize("damage", [cut_short, one_bit_flipped])
def test_resume_skips_a_damaged_newest_checkpoint_and_says_so(damage, demo_chars, tmp_path, capsys):
    config = TrainConfig.from_dict(
        tiny_gpt(demo_chars, max_steps=4, checkpoint_every=2, keep_checkpoints=5, eval_splits="")
    )
    train(config, tmp_path)
    folder = tmp_path / "checkpoints"
    (folder / "finished").unlink()  # as if the run had been stopped after step 4
    wrong = damage(folder / "step-00000004.pt")
    capsys.readouterr()
    trainer = Trainer(config, tmp_path, resume=True)
    assert trainer.state.step == 2  # the newest checkpoint that loads, not a fresh start
    assert capsys.readouterr().err.startswith(
        f"skipped damaged checkpoints (step-00000004.pt: {wrong})\n"
        f"resuming from step 2 ({folder / 'step-00000002.pt'})\n"
    )
    saved = torch.load(folder / "step-00000002.pt", weights_only=False)["model"]
    for name, p in trainer.model.state_dict().items():
        assert torch.equal(p, saved[name]), name


def test_a_run_whose_every_checkpoint_is_damaged_starts_afresh_and_says_why(tmp_path, capsys):
    folder = tmp_path / "checkpoints"
    for step in (2, 4):
        checkpoint.save(folder, {"step": step, "config": {}, "weights": torch.ones(100)})
    wrong = [cut_short(folder / "step-00000004.pt"), one_bit_flipped(folder / "step-00000002.pt")]
    assert checkpoint.resume_from(folder, {}, resume=True) is None
    assert capsys.readouterr().err == (
        f"checkpoints, all damaged (step-00000004.pt: {wrong[0]}; step-00000002.pt: {wrong[1]}),"
        f" moved to {tmp_path / 'checkpoints.stale-1'}; starting afresh\n"
    )


def test_a_resume_on_another_number_of_threads_says_it_is_not_bit_exact(
    demo_chars, tmp_path, capsys
):
    config = TrainConfig.from_dict(tiny_gpt(demo_chars, max_steps=2, eval_splits=""))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        Trainer(config, tmp_path).train_to_the_end()
        for resumed_on, said in ((1, False), (2, True)):
            torch.set_num_threads(resumed_on)
            capsys.readouterr()
            Trainer(config, tmp_path, resume=True)
            warning = "saved on 1 CPU thread, resumed on 2: the sums come out in another order"
            assert (warning in capsys.readouterr().err) is said
    finally:
        torch.set_num_threads(threads)


def test_a_damaged_checkpoint_the_resume_skipped_does_not_crowd_out_the_next(tmp_path):
    """Resumed at step 5 past a damaged step 8: the step-6 checkpoint is the newest, and
    with keep=1 the only one, not step 8's broken file."""
    folder = tmp_path / "checkpoints"
    checkpoint.save(folder, {"step": 5}, keep=1)
    (folder / "step-00000008.pt").write_bytes(b"cut short")
    saved, damaged = checkpoint.load_latest(folder)
    assert saved["step"] == 5
    assert damaged == ["step-00000008.pt: cut short, or not a checkpoint"]
    checkpoint.save(folder, {"step": 6}, keep=1)
    assert [p.name for p in checkpoint.list_checkpoints(folder)] == ["step-00000006.pt"]
    assert checkpoint.load_latest(folder) == (
        {"step": 6, "path": str(folder / "step-00000006.pt")},
        [],
    )


def test_only_the_newest_keep_checkpoints_stay(demo_chars, tmp_path):
    config = TrainConfig.from_dict(
        tiny_gpt(demo_chars, max_steps=6, checkpoint_every=2, keep_checkpoints=2, eval_splits="")
    )
    train(config, tmp_path)
    left = sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*.pt"))
    assert left == ["step-00000004.pt", "step-00000006.pt"]  # step 2's is gone


def test_the_saved_random_states_give_every_generator_its_next_numbers_again():
    """Python's, NumPy's and torch's generators: a resumed run draws what the uninterrupted
    one would have drawn from each (dropout, and whatever a model or study draws)."""
    import random

    import numpy as np

    def draw():
        return random.random(), np.random.rand(), torch.rand(3).tolist()

    state = checkpoint.rng_state()
    expected = draw()
    draw()  # the generators move on
    checkpoint.set_rng_state(state)
    assert draw() == expected
    # a checkpoint saved before the MPS generator's state was kept restores the same
    checkpoint.set_rng_state({name: saved for name, saved in state.items() if name != "mps"})
    assert draw() == expected


def test_data_with_a_new_meta_key_is_other_data():
    """A key that only one meta.json has (a setting added when the folder was prepared
    again) differs as a changed value does."""
    before = {"vocab_size": 65, "seed": 0}
    assert checkpoint.differences(before, before | {"fit_on": "train+val"}) == ["fit_on"]
    assert checkpoint.differences(before | {"fit_on": "train"}, before) == ["fit_on"]
    assert checkpoint.differences(before, before | {"seed": 1}) == ["seed"]


def test_the_newest_checkpoint_is_the_one_resumed_from(tmp_path):
    folder = tmp_path / "checkpoints"
    for step in (2, 4, 10):
        checkpoint.save(folder, {"step": step}, keep=3)
    assert checkpoint.load_latest(folder)[0]["step"] == 10


def test_a_run_that_fails_before_it_writes_anything_leaves_no_folder(demo_chars, tmp_path):
    config = TrainConfig.from_dict(tiny_gpt(demo_chars, train_split="nosuch"))
    with pytest.raises(FromScratchError, match="nosuch"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    (tmp_path / "used").mkdir()  # a folder that was there before stays
    with pytest.raises(FromScratchError, match="nosuch"):
        train(config, tmp_path / "used")
    assert (tmp_path / "used").is_dir()
