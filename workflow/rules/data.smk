# Stage 1: download (verified, resumable, from a mirror if set) and tokenise. A folder is
# named after its data set and tokenizer (data_folder): imdb-words, or imdb-words-fit-train+val
# for runs that train on train+val, whose vocabulary is learned from both.


rule prepare_data:
    output:
        f"{RESULTS}/data/{{folder}}/meta.json",
    log:
        f"{RESULTS}/logs/prepare_data/{{folder}}.log",
    wildcard_constraints:
        folder=r"[^/]+",
    conda:
        CONDA_ENV
    threads: 2
    params:
        **run(
            "prepare",
            lambda wc, input, output: prepare_arguments(wc.folder)
            | {"out": os.path.dirname(output[0]), "mirror": MIRROR},
        ),
    shell:
        "{params.cmd} > {log} 2>&1"
