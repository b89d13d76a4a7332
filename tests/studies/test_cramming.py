"""Cramming: a budget of training time. The schedule ends exactly at the budget, and a run
stopped half-way resumes with its elapsed time and its learning rate where they stopped;
the study's recipes are valid configs, post-norm is a different, still causal model, and
the tables pair each ablation with the baseline of the same seed."""

import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from matplotlib.patches import Rectangle

from fromscratch.figures import cramming
from fromscratch.models import GPT, GPTConfig
from fromscratch.train import TrainConfig, Trainer
from fromscratch.train.loop import Interrupted
from fromscratch.train.models import model_config
from fromscratch.train.schedule import learning_rate

from ..conftest import ROOT, error_bar_spans, tiny_gpt
from ..workflow.conftest import snakemake

BUDGET_S = 3.0


def budgeted(data, **overrides) -> dict:
    """A tiny GPT trained for BUDGET_S seconds, its LR decaying linearly to zero."""
    return tiny_gpt(
        data,
        dropout=0.0,
        clock="time",
        time_budget_s=BUDGET_S,
        max_steps=0,
        schedule="linear",
        min_lr_ratio=0.0,
        eval_splits="",
        **overrides,
    )


def logged_steps(out: Path) -> list[dict]:
    """The training steps logged so far (complete lines only: the run may be writing)."""
    path = out / "metrics.jsonl"
    text = path.read_text() if path.exists() else ""
    lines = text.splitlines()[: text.count("\n")]
    return [x for x in map(json.loads, lines) if "lr" in x]


def test_the_schedule_reads_the_clock_and_ends_exactly_at_the_budget(demo_chars, tmp_path):
    trainer = Trainer(TrainConfig.from_dict(budgeted(demo_chars, warmup_steps=0)), tmp_path)
    c, state = trainer.config, trainer.state
    state.step = 100  # the step count plays no part: only the elapsed time does
    for elapsed, lr in [(0.0, c.lr), (BUDGET_S / 4, 0.75 * c.lr), (BUDGET_S / 2, c.lr / 2)]:
        state.elapsed = elapsed
        progress = trainer.budget_progress()
        assert learning_rate(c.lr, state.step, progress, 0, c.schedule, c.min_lr_ratio) == (
            pytest.approx(lr)
        )
        assert not trainer.done()
    state.elapsed = BUDGET_S  # spent: the LR has reached its floor, and training stops
    assert trainer.budget_progress() == 1.0
    assert learning_rate(c.lr, state.step, 1.0, 0, c.schedule, c.min_lr_ratio) == 0.0
    assert trainer.done()


def test_a_budgeted_run_resumes_with_its_elapsed_time_and_lr(demo_chars, tmp_path):
    """SIGUSR2 (SLURM's warning) early in the budget saves a checkpoint; the resumed run
    spends only the rest of the budget, and its LR continues the decay where it stopped."""
    config = TrainConfig.from_dict(budgeted(demo_chars, warmup_steps=0))
    out = tmp_path / "run"

    def lr_at(elapsed: float) -> float:  # linear decay to zero over the budget
        return config.lr * (1 - elapsed / BUDGET_S)

    def stop_early_in_the_budget():
        deadline = time.time() + 60
        while time.time() < deadline:
            steps = logged_steps(out)
            if steps and steps[-1]["elapsed_s"] >= BUDGET_S / 4:
                os.kill(os.getpid(), signal.SIGUSR2)
                return
            time.sleep(0.01)

    # Ignored outside the training loop: a signal that comes too late cannot kill pytest.
    previous = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        watcher = threading.Thread(target=stop_early_in_the_budget)
        watcher.start()
        with pytest.raises(Interrupted):
            Trainer(config, out, progress_bar=False).run()
        watcher.join()
    finally:
        signal.signal(signal.SIGUSR2, previous)
    before = logged_steps(out)
    saved = torch.load(next((out / "checkpoints").glob("step-*.pt")), weights_only=False)
    stopped_at = saved["progress"]["elapsed"]
    assert stopped_at == before[-1]["elapsed_s"]
    assert BUDGET_S / 4 <= stopped_at < BUDGET_S

    resumed = Trainer(config, out, resume=True, progress_bar=False)
    assert (resumed.state.step, resumed.state.elapsed) == (len(before), stopped_at)
    summary = resumed.run()

    after = logged_steps(out)[len(before) :]
    assert [x["step"] for x in before + after] == list(range(1, len(before) + len(after) + 1))
    # The clock goes on from where it stopped, and so does the decay (not from the top).
    assert after[0]["elapsed_s"] > stopped_at
    assert after[0]["lr"] == pytest.approx(lr_at(stopped_at))
    assert after[0]["lr"] < before[-1]["lr"]
    # Every step's LR is read off the clock before it; the budget is spent exactly once:
    # the last step is the first to reach it, and the whole run stops there.
    for previous_step, step in zip(before + after, (before + after)[1:], strict=False):
        assert step["lr"] == pytest.approx(lr_at(previous_step["elapsed_s"]))
    assert after[-2]["elapsed_s"] < BUDGET_S <= after[-1]["elapsed_s"]
    assert summary["train_time_s"] == after[-1]["elapsed_s"]


def load_config() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


@pytest.mark.parametrize("preset", ["demo", "small", "full"])
def test_each_ablation_changes_one_setting_of_the_baseline_recipe(preset):
    """What an ablation's bar shows is the effect of its one change: cosine decays to the
    baseline's floor, not to one of its own as well."""
    study = load_config()["ablations"]["cramming"][preset]
    for name, change in study["ablations"].items():
        changed = [
            (part, key)
            for part, fields in change.items()
            for key, value in fields.items()
            if study[part].get(key) != value
        ]
        assert len(changed) == sum(map(len, change.values())) == 1, (name, change)


@pytest.mark.parametrize("preset", ["demo", "small", "full"])
def test_every_recipe_of_every_preset_is_a_valid_config(preset):
    study = load_config()["ablations"]["cramming"][preset]
    meta = {"vocab_size": 256}
    for change in [{}, *study["ablations"].values()]:
        spec = {
            "data": "results/data",
            "model": {"family": "gpt", **study["model"], **change.get("model", {})},
            **study["train"],
            **change.get("train", {}),
            "clock": "time",
            "time_budget_s": study["budget_s"],
            "max_steps": 0,
        }
        config = TrainConfig.from_dict(spec)
        model_config(config.model, meta)  # a wrong model field fails here


def test_post_norm_is_another_model_and_still_causal():
    def gpt(norm):
        torch.manual_seed(0)
        return GPT(GPTConfig(vocab_size=32, context=16, n_layer=2, n_head=2, n_embd=16, norm=norm))

    pre, post = gpt("pre").eval(), gpt("post").eval()
    idx = torch.randint(0, 32, (2, 16))
    assert not torch.allclose(pre(idx), post(idx), atol=1e-3)
    changed = idx.clone()
    changed[:, 7:] = torch.randint(0, 32, (2, 9))
    torch.testing.assert_close(post(changed)[:, :7], post(idx)[:, :7], atol=1e-6, rtol=0)
    assert not torch.allclose(post(changed)[:, 7:], post(idx)[:, 7:])


METRIC = "test/bits_per_char"


def write_run(root, recipe, budget, seed, bits, steps=100):
    folder = root / "runs" / recipe / f"budget{budget:g}s" / f"seed{seed}"
    folder.mkdir(parents=True)
    summary = {
        "steps": steps,
        "tokens": 1000,
        "train_time_s": budget + 0.01,
        "tokens_per_s": 10.0,
        METRIC: bits,
        "config": {"time_budget_s": budget, "seed": seed, "lr": 0.003},
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder / "summary.json"


def test_ablations_are_compared_with_the_baseline_of_the_same_seed(tmp_path):
    # Seed 1 is worse for every recipe: paired by seed, the ablation's effect is exact.
    bits = {("baseline", 0): 2.0, ("baseline", 1): 2.4, ("post_norm", 0): 2.1}
    bits |= {("post_norm", 1): 2.5, ("dropout", 0): 1.9, ("dropout", 1): 2.3}
    paths = [write_run(tmp_path, r, 6.0, s, b) for (r, s), b in bits.items()]
    paths += [write_run(tmp_path, "baseline", 3.0, s, 2.6) for s in (0, 1)]
    runs = cramming.runs_table(paths, METRIC)
    assert len(runs) == 8 and set(runs["budget_s"]) == {3.0, 6.0}
    table = cramming.ablation_table(runs, METRIC, 6.0).set_index("recipe")
    assert table.loc["baseline", "change"] == 0.0
    assert table.loc["post_norm", "change"] == pytest.approx(0.1)
    assert table.loc["post_norm", "change_sd"] == pytest.approx(0.0, abs=1e-12)
    assert table.loc["dropout", "change"] == pytest.approx(-0.1)
    assert table.loc["dropout", "mean"] == pytest.approx(2.1)

    reference = cramming.reference_table([paths[0]], METRIC)
    figures = tmp_path / "figures"
    cramming.budget_figure(
        runs, reference, METRIC, figures / "budget", "test", published={"value": 2, "label": "x"}
    )
    cramming.ablation_figure(runs, METRIC, 6.0, figures / "ablations", "test")
    assert {p.name for p in figures.iterdir()} == {
        "budget.png",
        "budget.pdf",
        "ablations.png",
        "ablations.pdf",
    }


def enabled(tmp_path) -> list[str]:
    """snakemake arguments: the project's config, then one that enables this study."""
    path = tmp_path / "cramming.yaml"
    path.write_text("ablations:\n  cramming: {enabled: true}\n")
    return ["--configfile", str(ROOT / "config.yaml"), str(path)]


@pytest.mark.parametrize("preset", ["demo", "full"])
def test_the_study_plans_every_run(tmp_path, preset):
    target = f"results/{preset}/studies/cramming/ablations.csv"
    result = snakemake(tmp_path, *enabled(tmp_path), "--config", f"preset={preset}", "-n", target)
    assert result.returncode == 0, result.stderr
    seeds = len(load_config()["presets"][preset]["seeds"])
    study = load_config()["ablations"]["cramming"][preset]
    runs = (len(study["budget_fractions"]) + 1 + len(study["ablations"])) * seeds
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, re.MULTILINE))
    assert counts["cramming_train"] == str(runs)
    assert counts["cramming_lr_range"] == counts["cramming_figures"] == "1"


def test_a_course_gpt_trained_on_other_splits_is_no_reference(tmp_path):
    """A final course GPT (train+test here) has trained on the split the recipe's runs,
    on train, are scored on: the study plans no course run to draw beside them."""
    target = "results/demo/studies/cramming/runs.csv"
    final = "presets={demo: {gpt: {train: {train_split: train+test}}}}"
    for override, course_runs in (([], 2), (["--config", final], 0)):
        result = snakemake(tmp_path, *enabled(tmp_path), *override, "-n", target)
        assert result.returncode == 0, result.stderr[-2000:]
        planned = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, re.MULTILINE))
        assert int(planned.get("train", 0)) == course_runs  # position/learned, two seeds


def test_a_typo_in_the_study_fails_before_any_job_naming_the_key(tmp_path):
    typo = "ablations={cramming: {demo: {ablations: {x: {model: {biass: 0}}}}}}"
    result = snakemake(tmp_path, *enabled(tmp_path), "--config", typo, "-n")
    assert result.returncode != 0
    assert "ablations.cramming.demo.ablations.x.model: unknown key 'biass'" in (
        result.stdout + result.stderr
    )


# Three seeds, unequally spread (mean != median, sample sd != standard error), and paired
# changes from the baseline that differ from seed to seed.
HOURS = (10800.0, 21600.0, 43200.0)
BASELINE = {10800.0: [1.45, 1.47, 1.58], 21600.0: [1.30, 1.33, 1.40], 43200.0: [1.20, 1.22, 1.30]}
CHANGES = {"post_norm": [0.03, 0.05, 0.10], "dropout": [-0.02, -0.01, 0.03]}
STEPS = {
    "baseline": [2400, 2410, 2430],
    "post_norm": [2001, 2002, 2005],
    "dropout": [1500, 1500, 1501],
}


def ablation_runs(tmp_path, budget: float, budgets=()) -> pd.DataFrame:
    """The runs table of a study: the baseline at each of `budgets`, and the baseline and
    each ablation (CHANGES on BASELINE[43200] seed by seed) at the whole `budget`."""
    whole = BASELINE[43200.0]
    bits = {"baseline": whole} | {r: np.add(whole, c).tolist() for r, c in CHANGES.items()}
    paths = [
        write_run(tmp_path, recipe, budget, seed, x, STEPS[recipe][seed])
        for recipe, xs in bits.items()
        for seed, x in enumerate(xs)
    ]
    paths += [
        write_run(tmp_path, "baseline", b, seed, x)
        for b in budgets
        for seed, x in enumerate(BASELINE[b])
    ]
    return cramming.runs_table(paths, METRIC)


def test_the_ablation_table_spreads_are_the_seeds_sample_sd(tmp_path):
    """ablations.csv says "mean ± sd over seeds": the sample sd (n - 1) of the metric, and
    of the changes from the baseline of the same seed, not their standard error."""
    table = cramming.ablation_table(ablation_runs(tmp_path, 43200.0), METRIC, 43200.0)
    table = table.set_index("recipe")
    for recipe, changes in CHANGES.items():
        bits = np.add(BASELINE[43200.0], changes)
        assert table.loc[recipe, "mean"] == pytest.approx(np.mean(bits))
        assert table.loc[recipe, "sd"] == pytest.approx(np.std(bits, ddof=1))
        assert table.loc[recipe, "change"] == pytest.approx(np.mean(changes))
        assert table.loc[recipe, "change_sd"] == pytest.approx(np.std(changes, ddof=1))
    assert table.loc["baseline", "sd"] == pytest.approx(np.std(BASELINE[43200.0], ddof=1))


def test_the_budget_figure_draws_the_baseline_over_seeds_in_hours(tmp_path, drawn):
    """Hour budgets are drawn in hours: the baseline recipe's mean ± sd (sample sd) at 3, 6
    and 12 h, averaged over the baseline's runs only, and the reference runs at their own
    training time, converted to the same unit."""
    runs = ablation_runs(tmp_path, 43200.0, budgets=HOURS[:2])
    reference = pd.DataFrame({"train_time_s": [30000.0, 31800.0], METRIC: [1.25, 1.27]})
    cramming.budget_figure(runs, reference, METRIC, tmp_path / "budget", "test")
    ax = drawn[-1].axes[0]
    assert "(h, log scale)" in ax.get_xlabel()
    line = next(line for line in ax.get_lines() if line.get_marker() == "o")
    assert line.get_xdata().tolist() == pytest.approx([3.0, 6.0, 12.0])
    assert line.get_ydata().tolist() == pytest.approx([np.mean(BASELINE[b]) for b in HOURS])
    sds = [2 * np.std(BASELINE[b], ddof=1) for b in HOURS]
    assert error_bar_spans(ax) == pytest.approx(sds)
    star = next(c for c in ax.collections if c.get_label().startswith("course GPT"))
    assert star.get_offsets()[:, 0].tolist() == pytest.approx([30000 / 3600, 31800 / 3600])


@pytest.mark.parametrize("budget, each", [(43200.0, "12 h each"), (180.0, "3 min each")])
def test_the_ablation_figure_shows_each_recipes_mean_change_and_its_steps(
    tmp_path, drawn, budget, each
):
    """Each bar is a recipe's mean change from the baseline of the same seed, from a line at
    no change (0); its label says the recipe's mean steps to a tenth (2,002.7, not 2,003);
    the title gives the budget in a readable unit."""
    cramming.ablation_figure(ablation_runs(tmp_path, budget), METRIC, budget, tmp_path / "a", "t")
    ax = drawn[-1].axes[0]
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert [bar.get_width() for bar in bars] == pytest.approx(
        [np.mean(c) for c in CHANGES.values()]
    )
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "post_norm\n(2,002.7 steps)",
        "dropout\n(1,500.3 steps)",
    ]
    vertical = [line.get_xdata() for line in ax.get_lines() if list(line.get_ydata()) == [0, 1]]
    assert [list(x) for x in vertical] == [[0, 0]]
    assert each in ax.get_title()
    assert "(2,413.3 steps)" in ax.get_title()  # the baseline's mean, 2400, 2410 and 2430
