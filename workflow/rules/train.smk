# Stage 3: training. Each comparison (attention variants on the classifier, position
# encodings on the GPT, and any of the user's own in `compare:`) is a set of runs over
# seeds, all at the tuned batch size and LR.


rule train:
    input:
        unpack(
            lambda wc: tuning_inputs(
                comparison_config(wc.experiment, wc.variant, 0),
                comparison_model(wc.experiment),
            )
        ),
        data=lambda wc: f"{comparison_config(wc.experiment, wc.variant, 0)['data']}/meta.json",
    output:
        summary=f"{RESULTS}/runs/{{experiment}}/{{variant}}/seed{{seed}}/summary.json",
        model=f"{RESULTS}/runs/{{experiment}}/{{variant}}/seed{{seed}}/model.pt",
    log:
        f"{RESULTS}/logs/train/{{experiment}}-{{variant}}-seed{{seed}}.log",
    wildcard_constraints:
        experiment="|".join(COMPARISONS),
        seed=r"\d+",
    conda:
        CONDA_ENV
    threads: 1
    params:
        **run(
            "train",
            lambda wc, input, output: {
                "config": comparison_config(
                    wc.experiment, wc.variant, int(wc.seed), **tuned_choices(input)
                )
                | tracking(wc.experiment, wc.variant, f"seed{wc.seed}"),
                "out": os.path.dirname(output.summary),
                "resume": True,
            },
        ),
    shell:
        "{params.cmd} > {log} 2>&1"
