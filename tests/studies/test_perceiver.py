"""The Perceiver study: matched parameter counts, equal FLOPs, exact evaluation of a model
that predicts only its latents, and a cost measurement that sees real memory.

That the Perceiver's latents are causal (a later token never changes an earlier
prediction) is tested for every attention and position kind in tests/models/test_perceiver.py.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch

from fromscratch import FromScratchError
from fromscratch.cli import main
from fromscratch.data import PreparedData
from fromscratch.figures import perceiver as figures
from fromscratch.io import read_json, write_json
from fromscratch.models import GPT, GPTConfig, Perceiver, PerceiverConfig
from fromscratch.stages.perceiver import (
    matched_perceiver,
    parameters,
    perceiver_cost_stage,
    perceiver_plan_stage,
    plan,
)
from fromscratch.train.evaluate import evaluate_lm, lm_windows

from ..conftest import SEED_SHIFTS, wandb_records
from .conftest import refused

SHARED = {"vocab_size": 40, "n_head": 4, "position": "learned"}


@pytest.mark.parametrize("context", [64, 1024])
def test_one_layer_fewer_gives_the_gpts_width_and_size(context):
    """The cross-attention block counts as a layer: same depth, same width, same size."""
    gpt = {**SHARED, "context": context, "n_layer": 4, "n_embd": 128}
    matched = matched_perceiver(
        gpt, {**SHARED, "context": context, "n_layer": 3, "latents": 32}, 0.01
    )
    assert matched["n_embd"] == 128
    counts = parameters("gpt", gpt), parameters("perceiver", matched)
    assert abs(counts[1] - counts[0]) / counts[0] < 0.001


@pytest.mark.parametrize("n_layer", [1, 6])
def test_other_depths_get_a_width_within_tolerance(n_layer):
    gpt = {**SHARED, "context": 256, "n_layer": 4, "n_embd": 128}
    matched = matched_perceiver(
        gpt, {**SHARED, "context": 256, "n_layer": n_layer, "latents": 64}, 0.05
    )
    assert (matched["n_embd"] > 128) == (n_layer < 3)  # shallower: wider, deeper: narrower
    target = parameters("gpt", gpt)
    assert abs(parameters("perceiver", matched) - target) / target <= 0.05
    # the counts on the meta device are those of the real models
    real = Perceiver(PerceiverConfig(**matched)).num_parameters()
    assert real == parameters("perceiver", matched)
    assert GPT(GPTConfig(**gpt)).num_parameters() == target


@pytest.mark.parametrize("n_head", [3, 4])
@pytest.mark.parametrize("position", ["rope", "sinusoidal"])
def test_positions_of_channel_pairs_get_an_even_size(position, n_head):
    """rope turns each head's features in pairs, sinusoidal positions the embedding's: the
    matched width keeps them even, and it is the closest of all the widths the model takes
    (with sinusoidal positions and 4 heads, 140 for one of these GPTs: an odd multiple of
    the heads)."""
    shared = {**SHARED, "n_head": n_head, "position": position, "context": 256}

    def takes(fields) -> bool:
        try:
            PerceiverConfig(**fields)
        except FromScratchError:
            return False
        return True

    for n_layer, width in ((1, 96), (2, 120), (5, 168), (6, 96)):
        gpt = {**shared, "n_layer": 4, "n_embd": width}
        perceiver = {**shared, "n_layer": n_layer, "latents": 64}
        matched = matched_perceiver(gpt, perceiver, 0.2)
        paired = matched["n_embd"] // n_head if position == "rope" else matched["n_embd"]
        assert paired % 2 == 0 and matched["n_embd"] % n_head == 0, (n_layer, width)
        target = parameters("gpt", gpt)
        widths = [{**perceiver, "n_embd": w} for w in range(1, matched["n_embd"] + 4 * n_head)]
        closest = min(
            filter(takes, widths), key=lambda fields: abs(parameters("perceiver", fields) - target)
        )
        assert matched == closest, (n_layer, width)


def test_the_tolerance_is_a_share_of_the_gpts_parameter_count():
    """A Perceiver off by exactly the tolerance (of the GPT's count) is accepted, one a
    hair further off is not, whether it comes out larger or smaller than the GPT."""
    for n_layer, gpt_width in ((1, 128), (6, 128), (1, 96)):
        gpt = {**SHARED, "context": 256, "n_layer": 4, "n_embd": gpt_width}
        perceiver = {**SHARED, "context": 256, "n_layer": n_layer, "latents": 64}
        target = parameters("gpt", gpt)
        closest = parameters("perceiver", matched_perceiver(gpt, perceiver, 0.5))
        off = abs(closest - target) / target
        assert off > 0
        assert matched_perceiver(gpt, perceiver, off)["n_embd"] > 0
        with pytest.raises(FromScratchError, match="closest: n_embd="):
            matched_perceiver(gpt, perceiver, off * (1 - 1e-9))


def test_an_impossible_tolerance_names_the_closest_width():
    gpt = {**SHARED, "context": 64, "n_layer": 2, "n_embd": 64}
    with pytest.raises(FromScratchError, match="closest: n_embd="):
        matched_perceiver(gpt, {**SHARED, "context": 64, "n_layer": 3, "latents": 16}, 1e-6)


def test_flops_estimate_is_the_gpts_when_every_position_is_a_latent():
    """With latents = context a Perceiver computes what a GPT one layer deeper does."""
    config = PerceiverConfig(**SHARED, context=128, latents=128, n_layer=2, n_embd=64)
    model = Perceiver(config)
    N = model.num_parameters(non_embedding=True)
    assert model.estimate_flops_per_token() == pytest.approx(6 * N + 12 * 3 * 64 * 128)
    fewer = Perceiver(PerceiverConfig(**{**config.to_dict(), "latents": 16}))
    assert fewer.estimate_flops_per_token() < model.estimate_flops_per_token() / 3


def tiny_plan(data, **overrides) -> dict:
    settings = {
        "contexts": [32, 128],
        "model": {"n_head": 2},
        "gpt": {"n_layer": 2, "n_embd": 32},
        "perceiver": {"n_layer": 1, "latents": 16},
        "budget_flops": 2e10,
        "batch_tokens": 512,
        "train": {"lr": 1e-3, "warmup_steps": 2},
        "eval_split": "test",
    }
    return plan(str(data), 40, **(settings | overrides))


def test_plan_spends_the_same_flops_on_both_models(demo_chars):
    variants = tiny_plan(demo_chars)
    assert sorted(variants) == ["gpt-128", "gpt-32", "perceiver-128", "perceiver-32"]
    for v in variants.values():
        assert v["batch_size"] * v["context"] == 512
        assert v["tokens"] == v["steps"] * 512  # every step a batch of 512 tokens
        assert v["flops"] == pytest.approx(2e10, rel=0.5 / v["steps"])  # steps are whole
    # the Perceiver's cheaper tokens buy it more of them, the more the longer the context
    steps = {name: v["steps"] for name, v in variants.items()}
    assert 1 < steps["perceiver-32"] / steps["gpt-32"] < steps["perceiver-128"] / steps["gpt-128"]


def test_plan_scores_both_models_with_the_perceivers_stride(demo_chars):
    # back to back windows would give the GPT's tokens half a window of context on average,
    # the Perceiver's at least context - latents: both are scored every `latents` tokens
    variants = tiny_plan(demo_chars)
    assert {name: v["config"]["eval_stride"] for name, v in variants.items()} == {
        "gpt-32": 16, "perceiver-32": 16, "gpt-128": 16, "perceiver-128": 16,
    }  # fmt: skip


def test_a_perceiver_with_heads_of_its_own_is_planned_at_a_width_they_divide(demo_chars):
    # the shared n_head (2) is the GPT's; the Perceiver's own 3 heads are what its width
    # must be a multiple of, in the check before the plan as in the plan itself
    perceiver = {"n_layer": 1, "latents": 16, "n_head": 3}
    variants = tiny_plan(demo_chars, perceiver=perceiver, tolerance=0.1)
    for context in (32, 128):
        fields = variants[f"perceiver-{context}"]["config"]["model"]
        assert fields["n_head"] == 3 and fields["n_embd"] % 3 == 0
        assert variants[f"gpt-{context}"]["config"]["model"]["n_head"] == 2


def test_plan_rejects_budgets_that_cannot_work(demo_chars):
    with pytest.raises(FromScratchError, match="only 1 steps, not more than warmup_steps"):
        tiny_plan(demo_chars, budget_flops=1e6)
    # a run no longer than its warm-up never trains at its LR: refused at equal lengths too
    fewest = min(v["steps"] for v in tiny_plan(demo_chars).values())
    train = {"lr": 1e-3, "warmup_steps": fewest}
    with pytest.raises(FromScratchError, match=f"only {fewest} steps, not more than warmup"):
        tiny_plan(demo_chars, train=train)
    tiny_plan(demo_chars, train=train | {"warmup_steps": fewest - 1})
    with pytest.raises(FromScratchError, match="batch_tokens=64 is less than one window"):
        tiny_plan(demo_chars, batch_tokens=64)
    for tolerance in (float("nan"), -1.0, 1.0):  # NaN would let any width through
        with pytest.raises(FromScratchError, match=f"tolerance={tolerance!r} must be a share"):
            tiny_plan(demo_chars, tolerance=tolerance)


@pytest.mark.parametrize(
    ("n", "context", "stride"), [(1000, 64, 64), (1000, 64, 16), (50, 64, 16), (100, 32, 7)]
)
def test_windows_predict_every_token_once(n, context, stride):
    predicted = []
    for start, end, scored in lm_windows(n, context, stride):
        assert 0 < end - start <= context and scored <= min(stride, end - start)
        predicted += range(end + 1 - scored, end + 1)  # the targets of its last `scored`
    assert predicted == list(range(1, n))


class UniformLatents(torch.nn.Module):
    """A 1/V guess for the last `latents` positions only, like a Perceiver AR's output."""

    def __init__(self, vocab, latents):
        super().__init__()
        self.vocab, self.latents = vocab, latents

    def forward(self, idx):
        return torch.zeros(idx.size(0), min(self.latents, idx.size(1)), self.vocab)


def test_a_model_of_latents_is_evaluated_on_every_token(demo_chars):
    data = PreparedData(demo_chars)
    vocab, tokens = data.meta["vocab_size"], 5000
    result = evaluate_lm(UniformLatents(vocab, 12), data, "test", context=50, max_tokens=tokens)
    assert result["tokens"] == tokens - 1
    assert result["bits"] == pytest.approx(math.log2(vocab) * (tokens - 1), rel=1e-6)


def test_a_trained_perceiver_beats_chance_and_costs_real_memory(demo_chars, tmp_path):
    """The plan's configs train through the real loop and evaluate exactly; the cost stage's
    peak memory grows with the context (attention), its throughput is measured."""
    from fromscratch.train import TrainConfig, train

    plan_path = tmp_path / "plan.json"
    perceiver_plan_stage(
        str(demo_chars),
        str(plan_path),
        contexts=[16, 512],
        model={"n_head": 2, "fast": False},
        gpt={"n_layer": 2, "n_embd": 32},
        perceiver={"n_layer": 1, "latents": 8},
        budget_flops=3e9,
        batch_tokens=4096,
        train={"lr": 3e-3, "eval_max_tokens": 2000},
        eval_split="test",
    )
    planned = read_json(plan_path)
    config = planned["variants"]["perceiver-16"]["config"]
    summary = train(TrainConfig.from_dict(config), tmp_path / "run", progress_bar=False)
    chance = math.log2(read_json(demo_chars / "meta.json")["vocab_size"])
    assert summary["test/bits_per_char"] < chance - 0.5
    # the cost of the GPTs only (each measurement is a fresh process)
    planned["variants"] = {k: v for k, v in planned["variants"].items() if k.startswith("gpt")}
    write_json(plan_path, planned)
    tracking = {"wandb_mode": "offline", "job_type": "cost", "run_name": "perceiver/demo/cost"}
    perceiver_cost_stage([str(plan_path)], str(tmp_path / "cost.json"), steps=1, tracking=tracking)
    cost = read_json(tmp_path / "cost.json")
    assert cost["data"] == str(demo_chars)  # what the figure joins the runs on
    # in W&B too: a table, a row a model, as in cost.json
    records = wandb_records(tmp_path / "cost.json.wandb")
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (run.display_name, run.job_type) == ("perceiver/demo/cost", "cost")
    (table_file,) = (tmp_path / "cost.json.wandb" / "wandb").glob(
        "offline-run-*/files/media/table/cost_0_*.table.json"
    )
    table = read_json(table_file)
    assert [dict(zip(table["columns"], row, strict=True)) for row in table["data"]] == cost["rows"]
    logged = read_json(tmp_path / "cost.json.wandb" / "summary.json")
    assert logged["gpt-16/tokens_per_s"] == cost["rows"][0]["tokens_per_s"]
    assert cost["steps"] == 1  # the steps each measurement took, as asked
    rows = {row["variant"]: row for row in cost["rows"]}
    for row in rows.values():  # timed at the batch size the plan trains with
        assert row["tokens_per_s"] * row["step_s"] == pytest.approx(
            row["batch_size"] * row["context"]
        )
    # 8 windows of 512 tokens: 2 layers of 2 heads of 512 x 512 attention, kept for backward
    assert rows["gpt-512"]["peak_memory_mb"] > rows["gpt-16"]["peak_memory_mb"] + 20
    # what training adds (about 120 MB, most of it the libraries' buffers at their first
    # use), without the 220 MB or more that Python and torch hold in every process
    assert 0 < rows["gpt-16"]["peak_memory_mb"] < 250, rows["gpt-16"]


PLAN = {
    "contexts": [16, 64],
    "model": {"n_head": 2},
    "gpt": {"n_layer": 2, "n_embd": 32},
    "perceiver": {"n_layer": 1, "latents": 8},
    "budget_flops": 1e9,
    "batch_tokens": 1024,
    "train": {"lr": 3e-3},
    "eval_split": "test",
}


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ({}, "missing a required argument: 'contexts'; perceiver-plan takes data, out, contexts"),
        ({**PLAN, "vocab_size": "10"}, "unknown vocab_size; perceiver-plan takes data, out"),
        ({**PLAN, "contexts": 64}, "contexts=64 is not of type list[int]"),
        ({**PLAN, "contexts": ["64"]}, 'contexts=["64"] is not of type list[int]'),
        ({**PLAN, "batch_tokens": "1024"}, 'batch_tokens="1024" is not of type int'),
        ({**PLAN, "gpt": 2}, "gpt=2 is not of type dict"),
        # the models' own fields, at every context: not only in the plan's job
        ({**PLAN, "contexts": [4, 64]}, "PerceiverConfig.latents: 8 is more than context=4"),
        ({**PLAN, "gpt": {"n_layer": 2, "n_embd": 33}}, "is not divisible by n_head=2"),
        ({**PLAN, "perceiver": {"n_layers": 1}}, "PerceiverConfig: unknown keys n_layers"),
        ({**PLAN, "budget_flops": -1.0}, "budget_flops=-1 must be a number > 0"),
    ],
)
def test_the_plan_stage_checks_its_settings_before_a_job_starts(tmp_path, capsys, args, named):
    args = {"data": str(tmp_path), "out": str(tmp_path / "plan.json"), **args}
    command = ["run", "perceiver-plan", "--args", json.dumps(args), "--launcher", "slurm"]
    command += ["--log-dir", str(tmp_path / "logs")]  # nothing is submitted: nothing logged
    assert main(command) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and named in err, err
    assert not (tmp_path / "logs").exists()


def test_the_plan_stage_on_a_missing_folder_or_no_context_is_a_one_line_error(
    demo_chars, tmp_path, capsys
):
    for data, contexts, named in (
        (tmp_path / "nowhere", [16], "nowhere is not a prepared data folder (no meta.json)"),
        (demo_chars, [], "perceiver: contexts=[]; give one or more, each >= 1"),
    ):
        args = {**PLAN, "data": str(data), "out": str(tmp_path / "plan.json"), "contexts": contexts}
        command = ["run", "perceiver-plan", "--args", json.dumps(args), "--log-dir", str(tmp_path)]
        assert main(command) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and named in err, err
    assert not (tmp_path / "plan.json").exists()


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (
            {"eval_split": "nosuch"},
            r"perceiver-plan: eval_split: \S+ has no split 'nosuch'; it has: train, test, ood",
        ),
        ({"budget_flops": -1e9}, r"perceiver: budget_flops=-1e\+09 must be a number > 0"),
        ({"budget_flops": 0}, r"perceiver: budget_flops=0 must be a number > 0"),
    ],
)
def test_the_plan_stage_refuses_a_split_the_data_lacks_and_no_budget(
    demo_chars, tmp_path, capsys, settings, named
):
    args = {**PLAN, "data": str(demo_chars), "out": str(tmp_path / "plan.json"), **settings}
    assert re.search(named, refused(capsys, "perceiver-plan", args, tmp_path / "logs"))
    assert not (tmp_path / "plan.json").exists()


NOT_PLANS = {
    "summary.json": json.dumps({"steps": 8, "test/bits_per_char": 2.5}),  # a run's
    "notes.txt": "not JSON",
}
A_PLAN = "a plan is the JSON file that the perceiver-plan stage writes"


@pytest.mark.parametrize(
    ("plan_file", "settings", "named"),
    [
        ("nosuch.json", {}, f"nosuch.json: no such file; {A_PLAN}"),
        ("notes.txt", {}, f"notes.txt: not a JSON file; {A_PLAN}"),
        ("summary.json", {}, 'summary.json: not a plan (it needs "data" and "variants", each'),
        ("plan.json", {"steps": 0}, "perceiver-cost: steps=0 must be an integer >= 1"),
        (
            "plan.json",
            {"tracking": {"wandb_mode": "loud"}},
            "perceiver-cost: tracking: TrackingConfig.wandb_mode: 'loud' is not one of",
        ),
    ],
)
def test_the_cost_stage_refuses_what_is_not_a_plan_no_steps_and_bad_tracking(
    demo_chars, tmp_path, capsys, plan_file, settings, named
):
    perceiver_plan_stage(str(demo_chars), str(tmp_path / "plan.json"), **PLAN)
    for name, text in NOT_PLANS.items():
        (tmp_path / name).write_text(text)
    args = {"plans": [str(tmp_path / plan_file)], "out": str(tmp_path / "cost.json"), **settings}
    assert named in refused(capsys, "perceiver-cost", args, tmp_path / "logs")
    assert not (tmp_path / "cost.json").exists()


def test_the_cost_stage_measures_the_plans_of_one_data_set_each_context_once(
    demo_chars, tmp_path, capsys
):
    """It takes the workflow's plan of each context; plans of two data sets, one context in
    two plans, or none at all are refused before anything is measured."""
    plans = []
    for context in PLAN["contexts"]:
        plans.append(str(tmp_path / f"{context}.json"))
        perceiver_plan_stage(str(demo_chars), plans[-1], **(PLAN | {"contexts": [context]}))
    other = read_json(plans[0]) | {"data": str(tmp_path / "other-chars")}
    write_json(tmp_path / "other.json", other)
    for given, named in (
        ([plans[0], str(tmp_path / "other.json")], "perceiver-cost: plans of 2 data sets ("),
        ([plans[0], *plans], "perceiver-cost: plans: gpt-16 is in two plans; give it once"),
        ([], "perceiver-cost: plans=[]; give one or more plan files"),
    ):
        args = {"plans": given, "out": str(tmp_path / "cost.json"), "steps": 1}
        assert named in refused(capsys, "perceiver-cost", args, tmp_path / "logs")
    assert not (tmp_path / "cost.json").exists()


def test_both_stages_refuse_a_folder_as_their_output_before_reading_anything(tmp_path, capsys):
    # the plan's data and the cost's plan do not exist: the first error must be out's
    folder = tmp_path / "taken"
    folder.mkdir()
    for stage, args in (
        ("perceiver-plan", {**PLAN, "data": str(tmp_path / "nowhere"), "out": str(folder)}),
        ("perceiver-cost", {"plans": [str(tmp_path / "nosuch.json")], "out": str(folder)}),
    ):
        error = refused(capsys, stage, args, tmp_path / "logs")
        assert f"{stage}: out={folder}: cannot be written: it is a folder" in error, error


# A study on a character-level data set scored on its validation split and a byte-level one
# on its test split; contexts 64 and 256; seeds shifted by SEED_SHIFTS
SPLITS = {"shakespeare-chars": "val", "enwik8": "test"}
UNITS = {"shakespeare-chars": "bits_per_char", "enwik8": "bits_per_byte"}
MODELS = {"gpt": "GPT", "perceiver": "Perceiver AR"}
CONTEXTS, SEEDS = (64, 256), (0, 1, 2)


def measured(data, family, context, seed):
    """A run's scores and costs, each set and model with values of its own: a summary has
    the bits of both splits and both units, their metric an offset apart."""
    bits = {"shakespeare-chars": 2.10, "enwik8": 1.30}[data] - 0.1 * (context == 256)
    bits += 0.05 * (family == "gpt") + SEED_SHIFTS[seed]
    speed = {"shakespeare-chars": 9000.0, "enwik8": 6000.0}[data] * (1 + (family == "perceiver"))
    return {
        **{
            f"{split}/{unit}": bits + 0.04 * (split == "test") + 0.3 * (unit == "bits_per_byte")
            for split in ("val", "test")
            for unit in ("bits_per_char", "bits_per_byte")
        },
        "tokens_per_s": speed * 64 / context + 150.0 * seed**2,
        "peak_memory_mb": {"shakespeare-chars": 300.0, "enwik8": 500.0}[data]
        + context * (2.0 if family == "gpt" else 0.5),
    }


def perceiver_results(folder):
    """perceiver.table of the plans (one a context, as the workflow writes them), cost and
    run summaries of the study above."""
    plans, costs, summaries = [], [], []
    for data in SPLITS:
        rows = []
        for context in CONTEXTS:
            variants = {}
            for family in MODELS:
                name = f"{family}-{context}"
                variants[name] = {
                    "family": family, "context": context, "batch_size": 4096 // context,
                    "parameters": 800_000 + 1000 * context - 20_000 * (family == "perceiver"),
                    "flops_per_token": 5e6, "steps": 100, "tokens": 409_600, "flops": 2e12,
                    "config": {},
                }  # fmt: skip
                cost = measured(data, family, context, 0)
                rows.append({"variant": name, "family": family, "context": context,
                             "tokens_per_s": cost["tokens_per_s"],
                             "peak_memory_mb": cost["peak_memory_mb"]})  # fmt: skip
                for seed in SEEDS:
                    run = measured(data, family, context, seed)
                    del run["peak_memory_mb"]  # the cost stage's
                    config = {
                        "data": f"/data/{data}",
                        "seed": seed,
                        "model": {"family": family, "context": context, "n_embd": 64},
                    }
                    summary = {**run, "config": config, "steps": 100, "tokens": 409_600,
                               "train_time_s": 600.0}  # fmt: skip
                    summaries.append(folder / f"{data}-{name}-seed{seed}.json")
                    summaries[-1].write_text(json.dumps(summary))
            plans.append(folder / f"{data}-plan-{context}.json")
            plans[-1].write_text(json.dumps({"data": f"/data/{data}", "variants": variants}))
        costs.append(folder / f"{data}-cost.json")
        cost = {"data": f"/data/{data}", "device": "cpu", "steps": 2, "rows": rows}
        costs[-1].write_text(json.dumps(cost))
    return figures.table(plans, costs, summaries, SPLITS)


def test_the_table_has_the_bits_of_each_data_sets_split_in_its_own_unit(tmp_path):
    results = perceiver_results(tmp_path)
    assert len(results) == len(SPLITS) * len(MODELS) * len(CONTEXTS) * len(SEEDS)
    for _, row in results.iterrows():
        family = {name: family for family, name in MODELS.items()}[row["model"]]
        run = measured(row["data"], family, row["context"], row["seed"])
        split, unit = SPLITS[row["data"]], UNITS[row["data"]]
        assert (row["split"], row["unit"]) == (split, unit)
        assert row["bits"] == pytest.approx(run[f"{split}/{unit}"])
        assert row["tokens_per_s"] == pytest.approx(run["tokens_per_s"])
        cost = measured(row["data"], family, row["context"], 0)  # the cost stage's run
        assert row["peak_memory_mb"] == cost["peak_memory_mb"]  # one per model, not per seed


def test_the_context_figure_shows_each_data_sets_own_runs_and_costs_from_zero(tmp_path, drawn):
    """A row of panels per data set (in name order), each line the mean over the seeds of
    that set's runs of one model; the costs' axes start at 0, where their ratios show."""
    figures.context_figure(perceiver_results(tmp_path), tmp_path / "context", "t")
    fig = drawn[-1]
    assert fig._suptitle.get_text() == "t\n(lines: mean ± sd over 3 seeds; points: seeds)"
    labels = {"shakespeare-chars": "validation bits per character", "enwik8": "test bits per byte"}
    panels = np.reshape(fig.axes, (len(SPLITS), 3))
    for data, row in zip(sorted(SPLITS), panels, strict=True):
        assert row[0].get_title(loc="left").startswith(f"{data}: ")
        assert row[0].get_ylabel() == labels[data]
        split_unit = f"{SPLITS[data]}/{UNITS[data]}"
        for ax, column in zip(row, (split_unit, "tokens_per_s", "peak_memory_mb"), strict=True):
            lines = {c.get_label().split(" (")[0]: c.lines[0].get_xydata() for c in ax.containers}
            for family, name in MODELS.items():
                means = [
                    np.mean([measured(data, family, context, s)[column] for s in SEEDS])
                    for context in CONTEXTS
                ]
                expected = np.column_stack([CONTEXTS, means])
                np.testing.assert_allclose(lines[name], expected, err_msg=f"{data} {column}")
            if column != split_unit:  # a cost: its axis starts at 0
                assert ax.get_ylim()[0] == 0
