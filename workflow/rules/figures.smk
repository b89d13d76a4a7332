# Stage 5: tidy tables from results/, seaborn figures, the poster. These rules read only
# files under results/ and never train: touching the figure code reruns only them.

FIGURE_CODE = figure_code()
FIGURES = f"{RESULTS}/figures"


# The tables read exactly the runs named here, not every run folder under runs/.
rule tables:
    input:
        runs=all_runs(),
        code=FIGURE_CODE,
    output:
        runs=f"{RESULTS}/tables/runs.csv",
        curves=f"{RESULTS}/tables/curves.csv",
    log:
        f"{RESULTS}/logs/figures/tables.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/tables.py"


rule figure_lr_range:
    input:
        curve=f"{RESULTS}/tune/{{model}}/lr_range.csv",
        choice=f"{RESULTS}/tune/{{model}}/lr_range.json",
        code=FIGURE_CODE,
    output:
        report(
            f"{FIGURES}/lr_range-{{model}}.png",
            caption="../report/lr_range.rst",
            category="Tuning",
        ),
        f"{FIGURES}/lr_range-{{model}}.pdf",
    log:
        f"{RESULTS}/logs/figures/lr_range-{{model}}.log",
    conda:
        CONDA_ENV
    params:
        title=lambda wc: f"{TITLES[wc.model]}: LR range test",
    script:
        "../scripts/lr_range.py"


rule figure_batch_size:
    input:
        result=f"{RESULTS}/tune/{{model}}/batch_size.json",
        noise=lambda wc: noise_scale_file(wc.model),
        code=FIGURE_CODE,
    output:
        report(
            f"{FIGURES}/batch_size-{{model}}.png",
            caption="../report/batch_size.rst",
            category="Tuning",
        ),
        f"{FIGURES}/batch_size-{{model}}.pdf",
    log:
        f"{RESULTS}/logs/figures/batch_size-{{model}}.log",
    conda:
        CONDA_ENV
    params:
        title=lambda wc: f"{TITLES[wc.model]}: batch-size search",
    script:
        "../scripts/batch_size.py"


rule figure_curves:
    input:
        curves=f"{RESULTS}/tables/curves.csv",
        code=FIGURE_CODE,
    output:
        report(
            f"{FIGURES}/curves-{{experiment}}.png",
            caption="../report/curves.rst",
            category="Training",
        ),
        f"{FIGURES}/curves-{{experiment}}.pdf",
    log:
        f"{RESULTS}/logs/figures/curves-{{experiment}}.log",
    conda:
        CONDA_ENV
    params:
        title=lambda wc: comparison_title(wc.experiment),
        metric=lambda wc: comparison_metric(wc.experiment),
        order=lambda wc: variants(wc.experiment),
        variable=lambda wc: compared_field(wc.experiment),
        model=lambda wc: comparison_model(wc.experiment),
    script:
        "../scripts/curves.py"


rule figure_comparison:
    input:
        runs=f"{RESULTS}/tables/runs.csv",
        code=FIGURE_CODE,
    output:
        report(
            f"{FIGURES}/compare-{{experiment}}.png",
            caption="../report/comparison.rst",
            category="Comparisons",
        ),
        f"{FIGURES}/compare-{{experiment}}.pdf",
    log:
        f"{RESULTS}/logs/figures/compare-{{experiment}}.log",
    conda:
        CONDA_ENV
    params:
        title=lambda wc: comparison_title(wc.experiment),
        metric=lambda wc: comparison_metric(wc.experiment),
        order=lambda wc: variants(wc.experiment),
        variable=lambda wc: compared_field(wc.experiment),
    script:
        "../scripts/comparison.py"


rule figure_samples:
    input:
        samples=expand(
            f"{RESULTS}/samples/position-{{variant}}-seed{SEEDS[0]}.txt",
            variant=variants("position"),
        ),
        code=FIGURE_CODE,
    output:
        report(
            f"{FIGURES}/samples.png",
            caption="../report/samples.rst",
            category="Samples",
        ),
        f"{FIGURES}/samples.pdf",
    log:
        f"{RESULTS}/logs/figures/samples.log",
    conda:
        CONDA_ENV
    params:
        names=[f"GPT, position: {v}" for v in variants("position")],
        title=f"Samples (seed {SEEDS[0]}, temperature {SAMPLING['temperature']})",
    script:
        "../scripts/samples.py"


POSTER_PANELS = [
    (
        "lr_range-classifier",
        "LR range test",
        "The loss while the learning rate grows "
        "exponentially; training uses one tenth of the LR at the loss minimum (dashed).",
    ),
    (
        "batch_size-classifier",
        "Batch-size search",
        "Throughput and peak memory per batch size; training uses the largest batch that "
        "fits, up to the largest the search tries (the title says which it was)."
        + (
            " Green, where measured: the gradient noise scale, past which bigger batches "
            "stop saving steps."
            if noise_scale_file("classifier")
            else ""
        ),
    ),
    (
        "compare-attention",
        "Self-attention, step by step",
        "Test accuracy of the classifier "
        "with simple (X Xᵀ), scaled, key/query/value, and multi-head attention; "
        "points: mean ± sd over seeds, dots: seeds.",
    ),
    (
        "curves-attention",
        "Classifier training",
        "Training loss (nats per review, smoothed) and test accuracy against "
        "training tokens; bands: one standard deviation over seeds.",
    ),
    (
        "compare-position",
        "Position information",
        f"Bits per {lm_unit()} of the GPT with each "
        "kind of position information (lower is better).",
    ),
    (
        "curves-position",
        "GPT training",
        "Training loss (nats per token, smoothed) and evaluation bits against "
        "training tokens for each position encoding.",
    ),
    ("lr_range-gpt", "GPT: LR range test", "The same test for the GPT."),
    ("batch_size-gpt", "GPT: batch-size search", "The same search for the GPT."),
    ("samples", "Samples", "Text generated by the GPT from the same prompt."),
]


POSTER_PANELS += own_comparison_panels()


# Every figure on one A0 page, and a poster of each study's own: the course's figures and
# the study's, printed larger than on the poster of everything (its text, with all seven
# studies, at 6-7 pt).
rule poster:
    input:
        **poster_inputs(),
    output:
        report(
            f"{RESULTS}/poster.pdf", caption="../report/poster.rst", category="Poster"
        ),
        f"{RESULTS}/poster.png",
    log:
        f"{RESULTS}/logs/figures/poster.log",
    conda:
        CONDA_ENV
    params:
        **poster_params(),
    script:
        "../scripts/poster.py"


for study_name in STUDY_TARGETS:

    rule:
        name:
            f"poster_{study_name}"
        input:
            **poster_inputs(study_name),
        output:
            report(
                f"{RESULTS}/posters/{study_name}.pdf",
                caption="../report/poster.rst",
                category="Poster",
            ),
            f"{RESULTS}/posters/{study_name}.png",
        log:
            f"{RESULTS}/logs/figures/poster-{study_name}.log",
        conda:
            CONDA_ENV
        params:
            **poster_params(study_name),
        script:
            "../scripts/poster.py"
