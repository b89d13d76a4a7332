"""The demo DAG end to end: here (local launcher) and through the real SLURM cluster.

To keep the suite short, both runs use a smaller demo (one seed, two variants of each
comparison, fewer steps, every research study at a few seconds of compute); everything
else — data, tuning, training, sampling, the studies, tables, figures, poster — is the
real DAG. The SLURM run leaves the studies out: it checks that the cluster computes what
the local run does.
"""

import json
import os
import shutil
import subprocess

import pytest
import yaml

from .conftest import ROOT, planned_jobs, snakemake

# The first test here builds the demo DAG (about 200 s alone on a 2-core machine, 270 s
# beside another test worker), and pytest-timeout counts a fixture's set-up in the test
# that asks for it: the suite's 600 s would leave a slower machine little room.
pytestmark = pytest.mark.timeout(1200)

# Replaces (not merges into) the demo preset's settings at each path.
SMALL_DEMO = {
    ("cluster", "default"): {"cpus": 1, "mem_gb": 4, "time_min": 20},
    ("presets", "demo", "seeds"): [0],
    ("presets", "demo", "compare"): {
        "attention": ["simple", "multihead"],
        "position": ["none", "learned"],
        "heads": {"model": "classifier", "field": "n_head", "variants": [1, 4]},  # one's own
    },
    ("presets", "demo", "tune", "lr_range", "steps"): 30,
    ("presets", "demo", "tune", "batch_size", "max_batch_size"): 8,
    ("presets", "demo", "classifier", "train", "max_steps"): 60,
    ("presets", "demo", "classifier", "train", "eval_every"): 30,
    ("presets", "demo", "gpt", "train", "max_steps"): 60,
    ("presets", "demo", "gpt", "train", "eval_every"): 30,
    ("ablations", "augmentation", "demo"): {
        "seeds": [0],
        "copies": 1,
        "classifier": {
            "strategies": {"none": 0.0, "unk": 0.1},
            "ood": {"demo": "ood"},
            "train": {"max_steps": 10, "eval_every": 0, "warmup_steps": 2},
        },
        "lm": {
            "dataset": "demo",
            "strategies": {"none": 0.0, "typos": 0.1},
            "ood": {"demo": "ood"},
            "eval_max_tokens": 2000,
            "train": {"max_steps": 10, "eval_every": 0, "warmup_steps": 2, "eval_max_tokens": 2000},
        },
    },
    ("ablations", "recurrent_gpt2", "demo"): {
        "model": "pipeline",
        "positions": ["learned"],
        "corpora": {"demo": "test"},
        "chunks": 2,
        "documents": 4,
        "memory_tokens": 1,
        "stride": 16,
        "batch_size": 8,
        "bin": 8,
    },
    ("ablations", "distillation", "demo"): {
        "teacher": "pipeline",
        "layers": [1, 2],
        "seeds": [0],
        "temperature": 2.0,
        "weight": 0.5,
        "lengths": [1, 2],
        "eval_split": "test",
        "eval_max_tokens": 2000,
        "model": {"n_embd": 16, "context": 32},
        "train": {"max_steps": 5, "batch_size": 4, "lr": 3.0e-2},
    },
    ("ablations", "perceiver", "demo"): {
        "seeds": [0],  # its own, as in the small preset
        "data": [{"dataset": "demo", "tokenizer": "chars", "eval_split": "test"}],
        "contexts": [32, 64],
        "model": {"n_head": 2, "position": "learned", "fast": True},
        "gpt": {"n_layer": 2, "n_embd": 32},
        "perceiver": {"n_layer": 1, "latents": 16},
        "tolerance": 0.05,
        "budget_flops": 5.0e9,
        "batch_tokens": 256,
        "train": {"lr": 3.0e-3, "warmup_steps": 2, "eval_max_tokens": 2000, "log_every": 5},
        "cost_steps": 1,
    },
    ("ablations", "cramming", "demo"): {
        "seeds": [0],
        "budget_s": 2,
        "budget_fractions": [0.5],
        "split": "test",
        "model": {
            "n_layer": 1,
            "n_head": 2,
            "n_embd": 32,
            "context": 32,
            "norm": "pre",
            "bias": False,
            "dropout": 0.0,
            "fast": True,
        },
        "train": {
            "batch_size": 8,
            "warmup_steps": 5,
            "schedule": "linear",
            "min_lr_ratio": 0.0,
            "eval_max_tokens": 2000,
            "log_every": 10,
        },
        "ablations": {"post_norm": {"model": {"norm": "post"}}},
    },
    ("ablations", "sentence_vae", "demo"): {
        "seeds": [0],
        "base": {"source": "pipeline"},
        "data": {"dataset": "demo", "tokenizer": "chars"},
        "sentences": {"train": 200, "test": 60, "max_tokens": 64},
        "vae": {"latent": 4, "bottleneck": 8},
        "train": {
            "max_steps": 10,
            "batch_size": 8,
            "lr": 3.0e-3,
            "warmup_steps": 2,
            "log_every": 5,
            "eval_every": 5,
            "examples": 5,
        },
        "variants": {
            "constant": {"kl_schedule": "constant", "free_bits": 0.0},
            "cyclical-free-bits": {"kl_schedule": "cyclical", "free_bits": 0.25},
        },
    },
    ("ablations", "encoder_decoder", "demo"): {
        "seeds": [0],
        "task": {
            "name": "reverse",
            "symbols": 4,
            "min_length": 1,
            "max_length": 4,
            "test_max_length": 6,
            "test_examples": 20,
        },
        "model": {"n_layer": 1, "n_head": 2, "n_embd": 32, "position": "learned", "fast": True},
        "gpt_layers": 2,
        "train": {
            "max_steps": 30,
            "batch_size": 16,
            "lr": 3.0e-3,
            "warmup_steps": 5,
            "log_every": 10,
        },
    },
}
STUDIES = [path[1] for path in SMALL_DEMO if path[0] == "ablations"]
RUNS = ["attention/simple", "attention/multihead", "position/none", "position/learned", "heads/1"]


def small_demo_config(workdir, studies=True):
    """config.yaml with SMALL_DEMO's settings in place, written to workdir."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    for path, value in SMALL_DEMO.items():
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    for name in STUDIES:
        config["ablations"][name]["enabled"] = studies
    path = workdir / "small-demo.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def copy_workflow(workdir):
    """The Snakefile, its rules and the package source, copied into workdir (as in a
    checkout): a test may change its copy's figure code, never the project's."""
    for name in ("Snakefile", "workflow", "envs", "src/fromscratch"):
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(ROOT / name, workdir / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, workdir / name)


def run_demo(workdir, *extra, studies=True):
    copy_workflow(workdir)
    config = small_demo_config(workdir, studies)
    result = snakemake(
        workdir, "--cores", "2", *extra, config=config, snakefile=workdir / "Snakefile"
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return workdir / "results" / "demo"


def summaries(results):
    return {
        run: json.loads((results / "runs" / run / "seed0" / "summary.json").read_text())
        for run in RUNS
    }


@pytest.fixture(scope="module")
def local_demo(tmp_path_factory):
    return run_demo(tmp_path_factory.mktemp("local"))


@pytest.mark.slow
def test_demo_dag_makes_every_figure_and_the_poster(local_demo):
    figures = local_demo / "figures"
    for name in (
        "lr_range-classifier",
        "lr_range-gpt",
        "batch_size-classifier",
        "batch_size-gpt",
        "compare-attention",
        "compare-position",
        "curves-attention",
        "curves-position",
        "compare-heads",
        "curves-heads",
        "samples",
    ):
        for suffix in (".png", ".pdf"):
            assert (figures / f"{name}{suffix}").stat().st_size > 10_000, name
    # the poster of everything, and each study's own (the course's figures and the study's)
    for poster in [local_demo / "poster", *(local_demo / "posters" / study for study in STUDIES)]:
        pdf = poster.with_suffix(".pdf").read_bytes()
        assert pdf.startswith(b"%PDF") and len(pdf) > 100_000, poster
        assert poster.with_suffix(".png").stat().st_size > 100_000, poster
    lr = json.loads((local_demo / "tune" / "classifier" / "lr_range.json").read_text())
    batch = json.loads((local_demo / "tune" / "classifier" / "batch_size.json").read_text())
    config = summaries(local_demo)["attention/multihead"]["config"]
    assert summaries(local_demo)["heads/1"]["config"]["model"]["n_head"] == 1
    assert (config["lr"], config["batch_size"]) == (lr["lr"], batch["batch_size"])  # tuned inputs
    assert (
        (local_demo / "samples" / "position-learned-seed0.txt").read_text().startswith("the film")
    )
    assert list(
        (local_demo / "runs" / "attention" / "multihead" / "seed0" / "wandb").glob("offline-run-*")
    )


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDIES)
def test_demo_dag_runs_every_research_study(local_demo, study):
    figures = sorted((local_demo / "figures" / study).glob("*.png"))
    assert figures, f"no figures of {study}"
    for png in figures:
        assert png.stat().st_size > 10_000 and png.with_suffix(".pdf").exists(), png
    tables = sorted((local_demo / "studies" / study).rglob("*.csv"))
    assert tables and all(len(t.read_text().splitlines()) > 1 for t in tables), study


@pytest.mark.slow
def test_the_report_shows_every_figure_with_its_caption(local_demo):
    """`snakemake --report`, as the README has it: one HTML file of the figures."""
    workdir = local_demo.parent.parent
    report = workdir / "report.html"
    result = snakemake(
        workdir,
        "--report",
        str(report),
        config=workdir / "small-demo.yaml",
        snakefile=workdir / "Snakefile",
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    html = report.read_text(encoding="utf-8")
    figures = sorted((local_demo / "figures").rglob("*.png"))
    assert len(figures) > 10
    for png in figures:
        assert str(png.relative_to(workdir)) in html, png
    caption = (ROOT / "workflow" / "report" / "samples.rst").read_text().split("\n")[0]
    assert caption in html


@pytest.mark.slow
def test_changing_figure_code_reruns_only_figure_rules(local_demo):
    # Snakemake ignores a bare touch of a small file whose content is unchanged (it keeps
    # checksums), so the test really changes the figure code (of the demo's copy), then
    # restores it for the tests after it.
    workdir = local_demo.parent.parent
    plots = workdir / "src" / "fromscratch" / "figures" / "plots.py"
    original = plots.read_text()
    try:
        plots.write_text(original + "\n# changed by a test\n")
        result = snakemake(
            workdir, "-n", config=workdir / "small-demo.yaml", snakefile=workdir / "Snakefile"
        )
    finally:
        plots.write_text(original)
    assert result.returncode == 0
    planned = planned_jobs(result)
    assert "train" not in planned and "lr_range" not in planned and "sample" not in planned
    assert {"tables", "poster"} <= set(planned)


@pytest.mark.slow
def test_a_changed_setting_reruns_the_jobs_it_reaches_and_no_others(local_demo):
    workdir = local_demo.parent.parent

    def planned(override):
        result = snakemake(
            workdir,
            "-n",
            "--config",
            override,
            config=workdir / "small-demo.yaml",
            snakefile=workdir / "Snakefile",
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return planned_jobs(result)

    samples = planned("presets={demo: {gpt: {sample: {temperature: 0.5}}}}")
    assert samples["sample"] == 2 and "train" not in samples and "lr_range" not in samples
    classifier = planned("presets={demo: {classifier: {train: {max_steps: 70}}}}")
    assert classifier["train"] == 4  # attention and heads, not position
    assert "sample" not in classifier
    # a longer run changes what tuning measures after some steps of its schedule (the
    # noise scale), not the batch that fits nor the range test's sweep
    assert classifier["noise_scale"] == 1
    assert "batch_size" not in classifier and "lr_range" not in classifier
    bookkeeping = planned("presets={demo: {classifier: {train: {eval_every: 7}}}}")
    assert bookkeeping["train"] == 4 and "noise_scale" not in bookkeeping
    evaluated = planned("presets={demo: {gpt: {eval_splits: 'test,ood'}}}")
    assert evaluated["train"] > 0 and not {"batch_size", "lr_range", "noise_scale"} & set(evaluated)
    assert planned("wandb={mode: disabled}") == {}  # where runs are logged is no setting
    # nor how often a run saves a checkpoint: no finished run trains again for it
    assert (
        planned("presets={demo: {gpt: {train: {checkpoint_every: 7, keep_checkpoints: 1}}}}") == {}
    )


@pytest.mark.slow
def test_results_copied_with_their_file_times_need_no_training(local_demo, tmp_path):
    # a cluster run's results/, copied to a laptop with their file times (rsync -a) but
    # without Snakemake's records (.snakemake/): the figures must not cost a retraining.
    # Figure code newer than the results (a later checkout) may redraw the figures.
    workdir = local_demo.parent.parent
    shutil.copytree(workdir / "results", tmp_path / "results", symlinks=True)
    files = dict(config=workdir / "small-demo.yaml", snakefile=workdir / "Snakefile")
    result = snakemake(tmp_path, "-n", **files)
    assert result.returncode == 0, result.stderr[-2000:]
    drawing = {"all", "tables", "poster", *(f"poster_{study}" for study in STUDIES)}
    planned = {rule for rule in planned_jobs(result) if rule not in drawing}
    assert all("figure" in rule for rule in planned), result.stdout[-3000:]
    os.utime(workdir / "src" / "fromscratch" / "figures" / "plots.py")  # a fresh checkout
    result = snakemake(tmp_path, "-n", **files)
    assert {"tables", "poster"} <= set(planned_jobs(result))


@pytest.mark.slow
@pytest.mark.slurm
def test_demo_dag_on_slurm_gives_the_local_metrics(local_demo, slurm_cluster, tmp_path):
    results = run_demo(tmp_path, "--profile", str(ROOT / "profiles" / "slurm"), studies=False)
    jobs = list((results / "logs" / "jobs" / "train").glob("*_log.out"))
    assert jobs, "no SLURM job logs"
    local, cluster = summaries(local_demo), summaries(results)
    for run in RUNS:
        for key, value in local[run].items():
            if "/" in key:  # the evaluation metrics
                assert cluster[run][key] == pytest.approx(value, rel=1e-6), (run, key)
    assert subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.strip() == ""
