# Stage 4: text samples from the trained GPT (evaluation itself runs inside training, over
# whole splits, and lands in each run's summary.json).

# How the GPT samples: the preset's settings, the temperature always among them (the
# samples figure's title states it). SAMPLE_TEMPERATURE is the sample stage's own default
# (stages/evaluate.py; a test keeps the two equal), for a preset that sets none.
SAMPLE_TEMPERATURE = 0.8
SAMPLING = {"temperature": SAMPLE_TEMPERATURE, **P["gpt"]["sample"]}


rule sample:
    input:
        f"{RESULTS}/runs/{{experiment}}/{{variant}}/seed{{seed}}/model.pt",
    output:
        f"{RESULTS}/samples/{{experiment}}-{{variant}}-seed{{seed}}.txt",
    log:
        f"{RESULTS}/logs/sample/{{experiment}}-{{variant}}-seed{{seed}}.log",
    conda:
        CONDA_ENV
    threads: 1
    params:
        **run(
            "sample",
            lambda wc, input, output: {
                "model": input[0],
                # the model's training data (its train rule's folder, the same for every
                # seed): the job's check of the prompt reads it before the model exists
                "data": comparison_config(wc.experiment, wc.variant, 0)["data"],
                "out": output[0],
                "seed": int(wc.seed),
                **SAMPLING,
            },
            unread={"data"},
        ),
    shell:
        "{params.cmd} > {log} 2>&1"
