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

from ..conftest import SEED_SHIFTS, chart_x_axis, wandb_records
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


def test_a_memory_of_half_the_context_is_allowed():
    """memory_tokens runs up to context / 2 inclusive: each later run still reads as many
    new tokens as it remembers."""
    model = tiny_gpt()
    half = CONTEXT // 2
    docs = documents(2, document_length(CONTEXT, chunks=3, memory_tokens=half))
    for variant in ("input", "layers"):
        bits = document_bits(model, docs, variant, memory_tokens=half)
        assert bits.shape == (2, docs.size(1) - 1) and torch.isfinite(bits).all()


def test_a_document_of_context_plus_one_tokens_is_one_run_of_the_plain_model():
    model = tiny_gpt()
    docs = documents(2, CONTEXT + 1)
    with torch.no_grad():
        plain = token_bits(model(docs[:, :-1]), docs[:, 1:])
    for variant in VARIANTS:
        torch.testing.assert_close(document_bits(model, docs, variant), plain)


def save_model(model: GPT, data, path, **settings) -> str:
    """A model.pt as the training loop writes it (weights and the training config, with
    `settings`)."""
    spec = {"family": "gpt", **model.config.to_dict()}
    config = {"model": spec, "data": str(data), **settings}
    torch.save({"model": model.state_dict(), "config": config}, path)
    return str(path)


# the ood split's reviews are short: its documents differ in how many separators they hold,
# so a mean of each document's (or each position's) mean is not the mean over the tokens
@pytest.mark.parametrize("split", ["test", "ood"])
def test_stage_writes_positions_and_summary_from_a_prepared_split(tmp_path, demo_chars, split):
    from fromscratch.data import PreparedData
    from fromscratch.stages.recurrent_gpt2 import recurrent_gpt2_stage

    data = PreparedData(demo_chars)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=data.meta["vocab_size"], context=CONTEXT, n_layer=1,
                          n_head=2, n_embd=16))  # fmt: skip
    with torch.no_grad():  # sharp predictions: bits that differ from token to token, so
        model.ln_f.weight.mul_(40)  # that a mean over the wrong tokens shows
    logged = {"wandb_mode": "offline", "run_name": "position/learned/seed0", "seed": 3}
    path = save_model(model, demo_chars, tmp_path / "model.pt", **logged)
    out = tmp_path / "study"
    result = recurrent_gpt2_stage(
        path, str(demo_chars), split, str(out), chunks=3, documents=20, memory_tokens=0
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
    tokens, length = data.stream(split), 3 * CONTEXT + 1
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
    # beside the model's training run in W&B: a curve a variant against the position
    run = tmp_path / "study.wandb"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["position"] for line in lines] == list(range(1, 3 * CONTEXT + 1))
    first = positions[positions["position"] == 1].set_index("variant")["bits"]
    assert {v: lines[0][f"{v}/bits"] for v in VARIANTS} == pytest.approx(first.to_dict())
    scored = json.loads((run / "summary.json").read_text())
    assert scored["layers/later_chunks"] == summary["variants"]["layers"]["later_chunks"]
    assert scored["config"]["seed"] == 3 and scored["config"]["chunks"] == 3
    records = wandb_records(run)
    (logged_run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert logged_run.display_name == f"position/learned/seed0/recurrent/demo-{split}"
    assert chart_x_axis(records) == "position"


@pytest.mark.parametrize(
    "setting",
    [
        {"stride": CONTEXT + 1},
        # longer than the context (a document of negative length) or so long that a later
        # run reads no new token: named as itself, not as the chunks or a division by zero
        {"memory_tokens": CONTEXT // 2 + 1},
        {"memory_tokens": CONTEXT},
        {"memory_tokens": 5 * CONTEXT},
    ],
)
def test_stage_refuses_a_setting_beyond_the_context_before_it_runs(tmp_path, demo_chars, setting):
    from fromscratch.data import PreparedData
    from fromscratch.stages.recurrent_gpt2 import recurrent_gpt2_stage

    vocab_size = PreparedData(demo_chars).meta["vocab_size"]
    model = GPT(GPTConfig(vocab_size=vocab_size, context=CONTEXT, n_layer=1, n_head=2, n_embd=16))
    path = save_model(model, demo_chars, tmp_path / "model.pt")
    ((name, value),) = setting.items()
    with pytest.raises(FromScratchError, match=f"^recurrent_gpt2: {name}={value} must be between"):
        recurrent_gpt2_stage(path, str(demo_chars), "test", str(tmp_path / "out"), **setting)
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


# The figure: a study of context 8 with one memory position, documents of 3 runs, three
# seeds whose bits differ by SEED_SHIFTS
STUDY = {"tokenizer": "chars", "context": 8, "memory_tokens": 1, "chunks": 3, "documents": 4}
VARIANT_BITS = {"sliding": 1.0, "truncated": 2.0, "input": 1.5, "layers": 1.2}
LEGEND = {  # what the figure calls each variant
    "sliding": "sliding window (full context)",
    "truncated": "truncated (chunk only)",
    "input": "memory at the input",
    "layers": "memory at every layer",
}


def planted_bits(variant: str, position, offset, seed: int):
    """Bits that differ by variant, fall along each run's chunk and rise slowly along the
    document, plus each seed's own shift."""
    return VARIANT_BITS[variant] + 1.0 / offset + 0.01 * position + SEED_SHIFTS[seed]


def study_targets():
    """The position (1: the document's second token), run and offset of every target."""
    c, m = STUDY["context"], STUDY["memory_tokens"]
    position = np.arange(1, document_length(c, STUDY["chunks"], m))
    return (position, *chunk_positions(position, c, m))


def study_summaries(folder, more_bits: float = 0.0) -> list[str]:
    """positions.csv and summary.json of each seed of the study above (with `more_bits`
    added to every target's bits), as recurrent_gpt2_stage writes them; their summaries."""
    position, chunk, offset = study_targets()
    summaries = []
    for seed in range(len(SEED_SHIFTS)):
        rows, variants = [], {}
        for variant in VARIANTS:
            bits = planted_bits(variant, position, offset, seed) + more_bits
            rows.append(pd.DataFrame({"variant": variant, "position": position, "chunk": chunk,
                                      "offset": offset, "bits": bits, "bits_sd": 0.1}))  # fmt: skip
            variants[variant] = {"bits_per_token": bits.mean(), "first_chunk": bits[:8].mean(),
                                 "later_chunks": bits[8:].mean()}  # fmt: skip
        seed_folder = folder / f"seed{seed}"
        seed_folder.mkdir(parents=True)
        pd.concat(rows).to_csv(seed_folder / "positions.csv", index=False)
        summary = {**STUDY, "document_tokens": len(position) + 1, "variants": variants}
        (seed_folder / "summary.json").write_text(json.dumps(summary))
        summaries.append(str(seed_folder / "summary.json"))
    return summaries


def variant_colours(fig) -> dict:
    """The colour of each variant, found by the name the figure's legend gives it."""
    legend = next(ax.get_legend() for ax in fig.axes if ax.get_legend())
    names = [t.get_text() for t in legend.texts]
    colours = dict(zip(names, [h.get_color() for h in legend.legend_handles], strict=True))
    return {variant: colours[name] for variant, name in LEGEND.items()}


@pytest.fixture
def along_document(tmp_path, drawn):
    """The figure of the study above, in bins of 4 positions, and each variant's colour."""
    from fromscratch.figures import recurrent_gpt2

    summaries = study_summaries(tmp_path)
    positions, table, summary = recurrent_gpt2.read_results(summaries, ["GPT"] * 3, [0, 1, 2])
    assert len(table) == 3 * len(VARIANTS)
    recurrent_gpt2.along_document(positions, summary, tmp_path / "figure", "t", bin_tokens=4)
    return drawn[-1], variant_colours(drawn[-1])


def curve_and_band(ax, colour) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, y of the line of `colour` on ax, and the half-width of its band at each x (seaborn
    also leaves an empty line of each colour, for the legend)."""
    (line,) = [ln for ln in ax.get_lines() if ln.get_color() == colour and len(ln.get_xdata())]
    x, y = line.get_data()
    bands = [b for b in ax.collections if b.get_paths()
             and np.allclose(b.get_facecolor()[0][:3], colour[:3])]  # fmt: skip
    assert len(bands) == 1, "no band of ± sd over the seeds"
    vertices = bands[0].get_paths()[0].vertices
    width = [np.ptp(vertices[np.isclose(vertices[:, 0], at), 1]) / 2 for at in x]
    return np.asarray(x), np.asarray(y), np.array(width)


SEED_MEAN, SEED_SD = np.mean(SEED_SHIFTS), np.std(SEED_SHIFTS, ddof=1)


def test_along_the_document_each_variant_is_its_mean_per_bin_with_the_seeds_sd(along_document):
    """The legend names each variant's own line; a bin of 4 is positions 1-4, 5-8, ...,
    drawn at its middle in a figure where token p spans p - 1 .. p; the dotted lines stand
    at the boundary before the first target of each later run."""
    fig, colours = along_document
    top = fig.axes[0]
    position, chunk, offset = study_targets()
    first = position[np.flatnonzero(np.diff(chunk)) + 1]  # of each later run
    assert first.tolist() == [9, 16]  # after the c = 8 targets of run 0, every c - m = 7
    dotted = [line.get_xdata()[0] for line in top.get_lines() if line.get_linestyle() == ":"]
    assert dotted == (first - 1).tolist()
    bins = [slice(0, 4), slice(4, 8), slice(8, 12), slice(12, 16), slice(16, 20), slice(20, 22)]
    for variant, colour in colours.items():
        x, y, width = curve_and_band(top, colour)
        expected = [planted_bits(variant, position[b], offset[b], 0).mean() for b in bins]
        np.testing.assert_allclose(x, [2, 6, 10, 14, 18, 22])
        np.testing.assert_allclose(y, np.array(expected) + SEED_MEAN, err_msg=variant)
        np.testing.assert_allclose(width, SEED_SD, err_msg=variant)


def test_within_a_later_chunk_each_variant_is_its_mean_per_offset_over_the_later_runs(
    along_document,
):
    """Run 0 (offsets 1 .. c) stays out: the panel is what the later runs see of their own
    chunk, offsets 1 .. c - m, each the mean of runs 1 and 2, with the seeds' sd."""
    fig, colours = along_document
    bottom = fig.axes[1]
    position, chunk, offset = study_targets()
    later = np.arange(1, 8)
    for variant, colour in colours.items():
        x, y, width = curve_and_band(bottom, colour)
        at = [(chunk > 0) & (offset == o) for o in later]  # in run 1 and in run 2
        expected = [planted_bits(variant, position[a], offset[a], 0).mean() for a in at]
        np.testing.assert_array_equal(x, later)
        np.testing.assert_allclose(y, np.array(expected) + SEED_MEAN, err_msg=variant)
        np.testing.assert_allclose(width, SEED_SD, err_msg=variant)


def test_two_models_side_by_side_each_draw_their_own_runs(tmp_path, drawn):
    """One column per model, in the order given, titled with its name: each column's lines
    are the means of that model's runs alone (here the second's bits are the first's + 1)."""
    from fromscratch.figures import recurrent_gpt2

    summaries = study_summaries(tmp_path / "gpt") + study_summaries(tmp_path / "gpt2", 1.0)
    models, seeds = ["GPT"] * 3 + ["GPT-2"] * 3, [0, 1, 2] * 2
    positions, _, summary = recurrent_gpt2.read_results(summaries, models, seeds)
    recurrent_gpt2.along_document(positions, summary, tmp_path / "figure", "t", bin_tokens=4)
    fig = drawn[-1]
    top, bottom = fig.axes[:2], fig.axes[2:]
    assert [ax.get_title() for ax in top] == ["GPT", "GPT-2"]
    assert top[1].get_legend() is not None  # beside the last column, not over the first
    position, chunk, offset = study_targets()
    bins = [slice(0, 4), slice(4, 8), slice(8, 12), slice(12, 16), slice(16, 20), slice(20, 22)]
    later = [(chunk > 0) & (offset == o) for o in range(1, 8)]
    for variant, colour in variant_colours(fig).items():
        along = [planted_bits(variant, position[b], offset[b], 0).mean() for b in bins]
        within = [planted_bits(variant, position[a], offset[a], 0).mean() for a in later]
        for column, more_bits in enumerate((0.0, 1.0)):
            for ax, expected in ((top[column], along), (bottom[column], within)):
                _, y, width = curve_and_band(ax, colour)
                np.testing.assert_allclose(y, np.array(expected) + SEED_MEAN + more_bits)
                np.testing.assert_allclose(width, SEED_SD, err_msg=variant)
