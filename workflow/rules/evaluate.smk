# Stage 4: text samples from the trained GPT (evaluation itself runs inside training, over
# whole splits, and lands in each run's summary.json).


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
                "out": output[0],
                "seed": int(wc.seed),
                **P["gpt"].get("sample", {}),
            },
        ),
    shell:
        "{params.cmd} > {log} 2>&1"
