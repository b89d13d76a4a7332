"""The recurrent GPT (models/recurrent.py) and its stage: memory of length zero is the
plain model, Hugging Face's GPT-2 and the project's GPT give the same bits, and the memory
carries information from one run to the next."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from fromscratch import FromScratchError
from fromscratch.models import GPT, GPTConfig, KVCache
from fromscratch.models.recurrent import (
    VARIANTS,
    chunk_positions,
    document_bits,
    document_length,
    token_bits,
)

from .conftest import refused

CONTEXT = 16


def tiny_gpt(position: str = "learned", seed: int = 0) -> GPT:
    """A random GPT whose weights are large enough that every token visibly matters."""
    torch.manual_seed(seed)
    config = GPTConfig(
        vocab_size=50, context=CONTEXT, n_layer=2, n_head=2, n_embd=32, position=position
    )
    model = GPT(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    return model.eval()


def tiny_hf_gpt2(folder):
    """A random Hugging Face GPT-2, saved and loaded back as a pretrained one would be."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=50, n_positions=CONTEXT, n_embd=32, n_layer=2, n_head=2)
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    model.save_pretrained(folder)
    return GPT2LMHeadModel.from_pretrained(folder, local_files_only=True).eval()


def documents(count: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 50, (count, length), generator=torch.Generator().manual_seed(seed))


def test_zero_length_memory_is_the_plain_model_on_consecutive_windows():
    model = tiny_gpt()
    docs = documents(3, document_length(CONTEXT, chunks=4, memory_tokens=0))
    with torch.no_grad():
        plain = torch.cat(
            [
                token_bits(model(docs[:, s : s + CONTEXT]), docs[:, s + 1 : s + CONTEXT + 1])
                for s in range(0, docs.size(1) - 1, CONTEXT)
            ],
            dim=1,
        )
    for variant in ("truncated", "input", "layers"):
        bits = document_bits(model, docs, variant, memory_tokens=0)
        torch.testing.assert_close(bits, plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("position", ["learned", "rope"])
def test_memory_carries_the_previous_run_and_truncation_forgets_it(position):
    model = tiny_gpt(position)
    length = document_length(CONTEXT, chunks=3)
    docs = documents(2, length)
    changed = docs.clone()
    changed[:, : CONTEXT - 1] = documents(2, CONTEXT - 1, seed=1)  # run 0, but its last token
    later = slice(CONTEXT, None)  # the targets of the runs after the first
    for variant in VARIANTS:
        before = document_bits(model, docs, variant)[:, later]
        after = document_bits(model, changed, variant)[:, later]
        if variant == "truncated":
            torch.testing.assert_close(before, after)
        else:
            assert (before - after).abs().max() > 1e-4, variant  # float noise: ~1e-6


def test_memory_at_every_layer_is_a_one_token_key_value_cache():
    """With learned positions the layers variant is exactly: keep the last token's keys and
    values of every layer from the previous run, and run the chunk after them."""
    model = tiny_gpt("learned")
    docs = documents(2, document_length(CONTEXT, chunks=2))
    cache = [KVCache() for _ in model.blocks]
    with torch.no_grad():
        model(docs[:, :CONTEXT], cache)
        for layer in cache:
            layer.k, layer.v = layer.k[:, :, -1:], layer.v[:, :, -1:]
        logits = model(docs[:, CONTEXT:-1], cache)
    expected = token_bits(logits, docs[:, CONTEXT + 1 :])
    bits = document_bits(model, docs, "layers")[:, CONTEXT:]
    torch.testing.assert_close(bits, expected, rtol=1e-5, atol=1e-5)


def test_memory_at_the_input_is_the_final_normalised_state_of_the_last_position():
    """The input variant: the previous run's last hidden state (after ln_f, what the head
    reads) stands in the first position's token embedding; its position is added."""
    model = tiny_gpt("learned")
    docs = documents(2, document_length(CONTEXT, chunks=2))

    def hidden(embeddings):
        x = model.block_input(embeddings)
        for block in model.blocks:
            x = block(x)
        return model.ln_f(x)

    with torch.no_grad():
        memory = hidden(model.wte(docs[:, :CONTEXT]))[:, -1:]
        second = hidden(torch.cat((memory, model.wte(docs[:, CONTEXT:-1])), dim=1))
        expected = token_bits(model.lm_head(second)[:, 1:], docs[:, CONTEXT + 1 :])
    bits = document_bits(model, docs, "input")[:, CONTEXT:]
    torch.testing.assert_close(bits, expected, rtol=1e-5, atol=1e-5)


def test_each_target_is_placed_in_its_run_and_at_its_offset():
    # context 8, one memory position: run 0 predicts positions 1..8 (seeing 1..8 tokens),
    # each later run the next 7 (seeing 1..7 tokens of its own chunk)
    chunk, offset = chunk_positions(np.arange(1, document_length(8, chunks=3)), 8)
    assert chunk.tolist() == [0] * 8 + [1] * 7 + [2] * 7
    assert offset.tolist() == list(range(1, 9)) + list(range(1, 8)) * 2


def test_sliding_window_sees_the_full_context_for_every_token():
    model = tiny_gpt()
    docs = documents(2, document_length(CONTEXT, chunks=2))
    bits = document_bits(model, docs, "sliding", stride=1)
    with torch.no_grad():
        for t in (CONTEXT + 1, docs.size(1) - 1):  # the bits of token t, from t - c .. t - 1
            logits = model(docs[:, t - CONTEXT : t])[:, -1:]
            torch.testing.assert_close(bits[:, t - 1 : t], token_bits(logits, docs[:, t : t + 1]))
    coarse = document_bits(model, docs, "sliding", stride=5)
    torch.testing.assert_close(coarse[:, :CONTEXT], bits[:, :CONTEXT])  # the first window
    assert document_bits(model, docs, "sliding", stride=CONTEXT).shape == bits.shape
    with pytest.raises(FromScratchError, match=f"stride={CONTEXT + 1} must be between 1 and"):
        document_bits(model, docs, "sliding", stride=CONTEXT + 1)  # would skip tokens


def test_hugging_face_gpt2_and_the_project_gpt_give_the_same_bits(tmp_path):
    hf = tiny_hf_gpt2(tmp_path / "gpt2")
    ours = GPT.from_gpt2(hf).eval()
    docs = documents(2, document_length(CONTEXT, chunks=3, memory_tokens=2))
    for variant in VARIANTS:
        theirs = document_bits(hf, docs, variant, memory_tokens=2, stride=3)
        mine = document_bits(ours, docs, variant, memory_tokens=2, stride=3)
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-4)


def test_bits_are_those_of_the_model_without_dropout_and_its_mode_is_kept():
    model = tiny_gpt()
    docs = documents(2, document_length(CONTEXT, chunks=2))
    expected = {variant: document_bits(model, docs, variant) for variant in VARIANTS}
    model.drop.p = 0.5  # dropout on the embeddings, in training mode
    model.train()
    for variant in VARIANTS:
        torch.testing.assert_close(document_bits(model, docs, variant), expected[variant])
        assert model.training


def test_bad_settings_fail_with_the_allowed_values():
    model, docs = tiny_gpt(), documents(1, document_length(CONTEXT, chunks=2))
    with pytest.raises(FromScratchError, match="sliding, truncated, input, layers"):
        document_bits(model, docs, "feedback")
    with pytest.raises(FromScratchError, match="memory_tokens=9"):
        document_bits(model, docs, "input", memory_tokens=9)


def save_model(model: GPT, data, path) -> str:
    """A model.pt as the training loop writes it (weights and the training config)."""
    spec = {"family": "gpt", **model.config.to_dict()}
    torch.save({"model": model.state_dict(), "config": {"model": spec, "data": str(data)}}, path)
    return str(path)


def test_stage_writes_positions_and_summary_from_a_prepared_split(tmp_path, demo_chars):
    from fromscratch.data import PreparedData
    from fromscratch.stages.recurrent_gpt2 import recurrent_gpt2_stage

    data = PreparedData(demo_chars)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=data.meta["vocab_size"], context=CONTEXT, n_layer=1,
                          n_head=2, n_embd=16))  # fmt: skip
    path = save_model(model, demo_chars, tmp_path / "model.pt")
    out = tmp_path / "study"
    result = recurrent_gpt2_stage(
        path, str(demo_chars), "test", str(out), chunks=3, documents=20, memory_tokens=0
    )
    assert set(result) == set(VARIANTS)
    summary = json.loads((out / "summary.json").read_text())
    positions = pd.read_csv(out / "positions.csv")
    assert summary["documents"] == 20 and summary["document_tokens"] == 3 * CONTEXT + 1
    assert len(positions) == len(VARIANTS) * 3 * CONTEXT
    assert positions.groupby("variant")["chunk"].max().eq(2).all()
    # No memory: every chunked variant scores each document in back-to-back windows; the 20
    # documents spread over the split's stream (its first and last slots among them), not
    # its start; the stream has the separator between two examples, whose bits are no
    # character's and stay out of the means
    tokens, length = data.stream("test"), 3 * CONTEXT + 1
    slots = (len(tokens) - 1) // (length - 1)
    bits, scored, separators = np.zeros(3), np.zeros(3), 0  # bits and tokens of each run
    for slot in np.round(np.linspace(0, slots - 1, 20)).astype(int):
        document = torch.from_numpy(tokens[slot * (length - 1) :][:length].astype(np.int64))
        for run in range(3):
            window = document[run * CONTEXT : (run + 1) * CONTEXT + 1][None]
            text = window[:, 1:] != data.tokenizer.eot
            bits[run] += token_bits(model(window[:, :-1]), window[:, 1:])[text].sum().item()
            scored[run] += int(text.sum())
            separators += int((~text).sum())
    assert separators and scored.sum() + separators == 20 * 3 * CONTEXT
    for variant in ("truncated", "input", "layers"):
        got = summary["variants"][variant]
        assert got["bits_per_token"] == pytest.approx(bits.sum() / scored.sum(), rel=1e-5)
        assert got["first_chunk"] == pytest.approx(bits[0] / scored[0], rel=1e-5)
        later = bits[1:].sum() / scored[1:].sum()
        assert got["later_chunks"] == pytest.approx(later, rel=1e-5)
    # a position's mean leaves out the documents that have a separator there
    assert positions["bits"].notna().all()


def test_stage_refuses_a_stride_longer_than_the_context_before_it_runs(tmp_path, demo_chars):
    from fromscratch.data import PreparedData
    from fromscratch.stages.recurrent_gpt2 import recurrent_gpt2_stage

    vocab_size = PreparedData(demo_chars).meta["vocab_size"]
    model = GPT(GPTConfig(vocab_size=vocab_size, context=CONTEXT, n_layer=1, n_head=2, n_embd=16))
    path = save_model(model, demo_chars, tmp_path / "model.pt")
    with pytest.raises(FromScratchError, match=f"recurrent_gpt2: stride={CONTEXT + 1} must be"):
        recurrent_gpt2_stage(
            path, str(demo_chars), "test", str(tmp_path / "out"), stride=CONTEXT + 1
        )
    assert not (tmp_path / "out").exists()


def test_stage_refuses_data_of_another_vocabulary(tmp_path, demo_chars):
    from fromscratch.stages.recurrent_gpt2 import recurrent_gpt2_stage

    path = save_model(tiny_gpt(), demo_chars, tmp_path / "model.pt")  # 50 tokens, not 37
    with pytest.raises(FromScratchError, match="tokenised with chars"):
        recurrent_gpt2_stage(path, str(demo_chars), "test", str(tmp_path / "out"), chunks=2)
    assert not (tmp_path / "out").exists()


def test_stage_runs_a_hugging_face_folder_with_either_backend(tmp_path, demo_chars, shared_mirror):
    """A saved Hugging Face GPT-2 on a corpus tokenised with gpt2: its own code and the
    project's GPT give the same numbers; a corpus of characters is refused, by name."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from fromscratch.data import prepare
    from fromscratch.stages.recurrent_gpt2 import recurrent_gpt2_stage

    data = tmp_path / "demo-gpt2"
    prepare("demo", data, mirror=str(shared_mirror), tokenizer="gpt2", progress=False)
    torch.manual_seed(0)
    config = GPT2Config(n_positions=CONTEXT, n_embd=16, n_layer=1, n_head=2)  # 50,257 tokens
    GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    summaries = {}
    for backend in ("hf", "own"):
        out = tmp_path / backend
        recurrent_gpt2_stage(
            str(tmp_path / "gpt2"), str(data), "test", str(out), chunks=2, documents=3,
            backend=backend,
        )  # fmt: skip
        summaries[backend] = json.loads((out / "summary.json").read_text())["variants"]
    for variant in VARIANTS:
        assert summaries["own"][variant]["bits_per_token"] == pytest.approx(
            summaries["hf"][variant]["bits_per_token"], rel=1e-5
        )
    with pytest.raises(FromScratchError, match="reads gpt2"):
        recurrent_gpt2_stage(str(tmp_path / "gpt2"), str(demo_chars), "test", str(tmp_path / "x"))


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"chunks": 0}, "chunks=0 must be an integer >= 2 (the memory carries from one run"),
        ({"chunks": 1}, "chunks=1 must be an integer >= 2"),
        ({"documents": -3}, "documents=-3 must be an integer >= 0 (0: all that fit)"),
        ({"memory_tokens": -1}, "memory_tokens=-1 must be an integer >= 0, at most context/2"),
        ({"stride": 0}, "stride=0 must be an integer >= 1"),
        ({"batch_size": 0}, "batch_size=0 must be an integer >= 1"),
        ({"split": "nosuch"}, "has no split 'nosuch'; it has: train, test, ood"),
    ],
)
def test_stage_refuses_bad_settings_before_the_model_loads(
    tmp_path, demo_chars, capsys, settings, named
):
    # the model is nowhere (and would be downloaded by name): the settings come first
    args = {"model": str(tmp_path / "nowhere"), "data": str(demo_chars), "split": "test",
            "out": str(tmp_path / "out"), **settings}  # fmt: skip
    assert named in refused(capsys, "recurrent-gpt2", args, tmp_path / "logs")
    assert not (tmp_path / "out").exists()


def test_asking_for_more_documents_than_fit_reads_all_that_fit(tmp_path, demo_chars):
    from fromscratch.data import PreparedData
    from fromscratch.stages.recurrent_gpt2 import recurrent_gpt2_stage

    data = PreparedData(demo_chars)
    model = GPT(GPTConfig(vocab_size=data.meta["vocab_size"], context=CONTEXT, n_layer=1,
                          n_head=2, n_embd=16))  # fmt: skip
    path = save_model(model, demo_chars, tmp_path / "model.pt")
    fit = (len(data.stream("ood")) - 1) // (2 * CONTEXT - 1)  # documents of two runs
    for documents in (0, fit + 1000):  # 0: all that fit
        out = tmp_path / f"study-{documents}"
        recurrent_gpt2_stage(path, str(demo_chars), "ood", str(out), chunks=2, documents=documents)
        assert json.loads((out / "summary.json").read_text())["documents"] == fit
