"""The config is validated before any job starts; the full preset's DAG is complete."""

import re

import pytest

from .conftest import ROOT, snakemake

MALFORMED = [
    ("launcher=pbs", r"'pbs' is not one of \['local', 'debug', 'slurm'\]"),
    ("preset=huge", r"preset 'huge' is not defined; defined: demo, small, full"),
    ("wandb={mode: sometimes, project: x}", r"'sometimes' is not one of \['online'"),
    ("unknown_key=1", r"Additional properties are not allowed \('unknown_key' was unexpected\)"),
    ("cluster={default: {gpus: two}}", r"On instance\['cluster'\]\['default'\]\['gpus'\]"),
    ("presets={demo: {seeds: []}}", r"\[\] should be non-empty"),
    (
        "presets={demo: {classifier: {model: {attention: dense}}}}",
        r"'dense' is not one of \['simple', 'scaled', 'qkv', 'multihead'\]",
    ),
    ("presets={demo: {gpt: {data: {dataset: wikitext}}}}", r"'wikitext' is not one of \['imdb'"),
    ("ablations={cramming: {enabled: 'yes'}}", r"On instance\['ablations'\]\['cramming'\]"),
]


@pytest.mark.parametrize(("override", "message"), MALFORMED)
def test_malformed_config_fails_before_any_job(workdir, override, message):
    result = snakemake(workdir, "-n", "--config", override)
    assert result.returncode != 0
    assert re.search(message, result.stdout + result.stderr), result.stderr[-2000:]
    assert not (workdir / "results").exists()


def test_full_preset_dry_run_lists_every_job(workdir):
    result = snakemake(workdir, "-n", "--config", "preset=full")
    assert result.returncode == 0, result.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, re.MULTILINE))
    # 2 data sets, 2 × (batch size, LR range), (4 attention + 6 position variants) × 3 seeds,
    # 6 samples, the tables, 7 figures and the poster.
    assert counts == {
        "prepare_data": "2",
        "batch_size": "2",
        "lr_range": "2",
        "train": "30",
        "sample": "6",
        "tables": "1",
        "figure_lr_range": "2",
        "figure_batch_size": "1",
        "figure_curves": "2",
        "figure_comparison": "2",
        "figure_samples": "1",
        "poster": "1",
        "all": "1",
        "total": "53",
    }
    assert "results/full/data/enwik8-bytes/meta.json" in result.stdout


def test_lint_is_clean(workdir):
    result = snakemake(workdir, "--lint")
    assert result.returncode == 0
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_enabling_a_study_without_rules_says_so(workdir):
    extra = workdir / "extra.yaml"
    extra.write_text("ablations:\n  cramming: {enabled: true}\n")
    result = snakemake(workdir, "-n", "--configfile", str(ROOT / "config.yaml"), str(extra))
    assert result.returncode != 0
    assert "ablations.cramming.enabled is true, but this study has no rules yet" in (
        result.stdout + result.stderr
    )
