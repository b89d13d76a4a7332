# Stage 2: the tuned values that training takes as inputs. The batch-size search picks the
# largest batch that fits; the LR range test runs at that batch size and picks the LR.
# Beside them, where the preset asks for it, the gradient noise scale: the batch size past
# which bigger batches stop saving steps, drawn on the batch-size figure, measured after
# the course run's first steps (at its tuned LR and batch size).


rule batch_size:
    input:
        lambda wc: f"{data_dir(wc.model)}/meta.json",
    output:
        f"{RESULTS}/tune/{{model}}/batch_size.json",
    log:
        f"{RESULTS}/logs/batch_size/{{model}}.log",
    conda:
        CONDA_ENV
    # on a CPU, tokens/s on the thread a training job has (each probe runs in a child
    # process on its parent's threads)
    threads: 1
    params:
        **run(
            "batch-size",
            lambda wc, input, output: {
                # the throughput against the batch size, a W&B run of its own
                "config": train_spec(wc.model)
                | tracking("tune", wc.model, "batch-size", job_type="batch-size"),
                "out": os.path.dirname(output[0]),
                **P["tune"]["batch_size"],
            },
            unread=RUN_BOOKKEEPING | RUN_SCHEDULE,
        ),
    shell:
        "{params.cmd} > {log} 2>&1"


rule lr_range:
    input:
        data=lambda wc: f"{data_dir(wc.model)}/meta.json",
        batch_size=f"{RESULTS}/tune/{{model}}/batch_size.json",
    output:
        choice=f"{RESULTS}/tune/{{model}}/lr_range.json",
        curve=f"{RESULTS}/tune/{{model}}/lr_range.csv",
    log:
        f"{RESULTS}/logs/lr_range/{{model}}.log",
    conda:
        CONDA_ENV
    threads: 1
    params:
        **run(
            "lr-range",
            lambda wc, input, output: {
                # the loss against the LR, a W&B run of its own
                "config": with_tuned(
                    train_spec(wc.model)
                    | tracking("tune", wc.model, "lr-range", job_type="lr-range"),
                    batch_size=input.batch_size,
                ),
                "out": os.path.dirname(output.choice),
                **P["tune"]["lr_range"],
            },
            unread=RUN_BOOKKEEPING | RUN_SCHEDULE,
        ),
    shell:
        "{params.cmd} > {log} 2>&1"


rule noise_scale:
    input:
        data=lambda wc: f"{data_dir(wc.model)}/meta.json",
        lr=f"{RESULTS}/tune/{{model}}/lr_range.json",
        batch_size=f"{RESULTS}/tune/{{model}}/batch_size.json",
    output:
        f"{RESULTS}/tune/{{model}}/noise_scale.json",
    log:
        f"{RESULTS}/logs/noise_scale/{{model}}.log",
    conda:
        CONDA_ENV
    threads: 1
    params:
        **run(
            "noise-scale",
            lambda wc, input, output: {
                # the course run's first steps: its tuned LR and batch size; the
                # measurement a W&B run of its own
                "config": with_tuned(
                    train_spec(wc.model)
                    | tracking(
                        "tune", wc.model, "noise-scale", job_type="noise-scale"
                    ),
                    lr=input.lr,
                    batch_size=input.batch_size,
                ),
                "out": os.path.dirname(output[0]),
                **P["tune"]["noise_scale"],
            },
            unread=RUN_BOOKKEEPING,
        ),
    shell:
        "{params.cmd} > {log} 2>&1"
