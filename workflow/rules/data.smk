# Stage 1: download (verified, resumable, from a mirror if set) and tokenise.


rule prepare_data:
    output:
        f"{RESULTS}/data/{{dataset}}-{{tokenizer}}/meta.json",
    log:
        f"{RESULTS}/logs/prepare_data/{{dataset}}-{{tokenizer}}.log",
    conda:
        CONDA_ENV
    threads: 2
    params:
        **run(
            "prepare",
            lambda wc, input, output: {
                "dataset": wc.dataset,
                "tokenizer": wc.tokenizer,
                "out": os.path.dirname(output[0]),
                "mirror": MIRROR,
            },
        ),
    shell:
        "{params.cmd} > {log} 2>&1"
