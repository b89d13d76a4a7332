"""The LSTM language model: the same interface as GPT, its state is its cache."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fromscratch.models import LSTMConfig, LSTMLanguageModel, SamplingError


def tiny(**kw) -> LSTMConfig:
    return LSTMConfig(**{**dict(vocab_size=32, context=16, n_layer=2, n_embd=32), **kw})


def test_shapes_and_causality():
    model = LSTMLanguageModel(tiny()).eval()
    idx = torch.randint(0, 32, (2, 16))
    logits = model(idx)
    assert logits.shape == (2, 16, 32)
    changed = idx.clone()
    changed[:, 9:] = (idx[:, 9:] + 1) % 32
    torch.testing.assert_close(model(changed)[:, :9], logits[:, :9])


def test_state_sampling_gives_the_same_tokens():
    model = LSTMLanguageModel(tiny()).eval()
    prompt = torch.randint(0, 32, (3, 4))
    runs = [
        model.generate(
            prompt, 30, use_cache=c, top_k=10, generator=torch.Generator().manual_seed(5)
        )
        for c in (True, False)
    ]
    assert runs[0].shape == (3, 34) and torch.equal(runs[0], runs[1])


@pytest.mark.parametrize(
    "prompt, named",
    [
        (torch.zeros(2, 0, dtype=torch.long), "idx must be a non-empty (B, T) tensor"),
        (torch.zeros(4, dtype=torch.long), "shape (4,)"),
        (torch.zeros(1, 3), "not torch.float32"),
        (torch.tensor([[1, 32]]), "token ids 1..32 are outside the vocabulary [0, 32)"),
    ],
)
def test_a_bad_prompt_is_a_one_line_error(prompt, named):
    with pytest.raises(SamplingError) as error:
        LSTMLanguageModel(tiny()).eval().generate(prompt, 3)
    assert named in str(error.value) and "\n" not in str(error.value)


def test_overfits_a_tiny_batch(train_steps):
    model = LSTMLanguageModel(tiny(tie_weights=False))
    data = torch.randint(0, 32, (4, 17))
    x, y = data[:, :-1], data[:, 1:]
    losses = train_steps(
        model, lambda: F.cross_entropy(model(x).reshape(-1, 32), y.reshape(-1)), steps=300
    )
    assert losses[-1] < 0.1


def test_parameter_count():
    for bias in (True, False):  # four gates, each on the input and the state (with 2 biases)
        c = tiny(tie_weights=True, bias=bias)
        per_layer = 4 * c.n_embd * (c.n_embd + c.n_embd) + bias * 2 * 4 * c.n_embd
        assert LSTMLanguageModel(c).num_parameters() == c.vocab_size * c.n_embd + 2 * per_layer


def test_embeddings_start_at_unit_variance():
    torch.manual_seed(0)
    model = LSTMLanguageModel(tiny(vocab_size=256))
    assert model.wte.weight.std().item() == pytest.approx(1.0, rel=0.05)


def test_dropout_falls_on_the_embeddings_between_layers_and_before_the_head(
    assert_dropout_on,
):
    model = LSTMLanguageModel(tiny(dropout=0.5))
    assert model.lstm.dropout == 0.5  # between the two layers, inside nn.LSTM
    assert LSTMLanguageModel(tiny(n_layer=1, dropout=0.5)).lstm.dropout == 0  # no between
    idx = torch.randint(0, 32, (8, 16))
    assert_dropout_on(model, {"lstm": model.lstm, "head": model.lm_head}, idx, p=0.5)


def test_without_a_state_the_next_token_reads_the_whole_prompt():
    """The LSTM has no context limit: a prompt longer than `context` is read in full, as
    reading it one token at a time with the state does."""
    model = LSTMLanguageModel(tiny()).eval()  # context 16
    idx = torch.randint(0, 32, (3, 20))
    with torch.no_grad():
        logits, _ = model.next_token_logits(idx, None)
        torch.testing.assert_close(logits, model(idx)[:, -1])
        state = None
        for t in range(1, 21):
            stepped, state = model.next_token_logits(idx[:, :t], state)
    torch.testing.assert_close(logits, stepped)
