# Research study "recurrent_gpt2": without retraining, does a GPT read further than its
# context if each run over a long document gets a memory of the previous run -- its last
# hidden state at the input (variant `input`), or its hidden states at every layer
# (`layers`) -- compared with plain sliding windows and truncated chunks
# (models/recurrent.py)? Measured as bits per token along the documents.
#
#   {corpus}/{model}/positions.csv, summary.json   one model on one corpus (every variant)
#   {corpus}.csv                                    the table of all of them
#   figures/recurrent_gpt2/{corpus}.png             the curves
#
# `model: pipeline` evaluates the course GPTs of the position comparison (each position
# kind of `positions`, every seed; corpus: their own data set); any other value is a
# Hugging Face GPT-2 (hub name or folder; corpora tokenised with gpt2).

if ablation_enabled("recurrent_gpt2"):
    REC = study("recurrent_gpt2")
    REC_DIR = study_dir("recurrent_gpt2")
    REC_PIPELINE = REC["model"] == "pipeline"
    # Every model the study evaluates: {name: (model.pt or Hugging Face name, kind, seed)}.
    if REC_PIPELINE:
        REC_MODELS = {
            f"{position}-seed{seed}": (
                f"{run_folder('position', position, seed)}/model.pt",
                f"GPT, {position} positions",
                seed,
            )
            for position in REC["positions"]
            for seed in study_seeds("recurrent_gpt2")
        }
        for corpus in REC["corpora"]:
            if corpus != P["gpt"]["data"]["dataset"]:
                stop(
                    f"config: ablations.recurrent_gpt2.{PRESET}.corpora: {corpus!r} is not "
                    f"the data set of the pipeline's GPT ({P['gpt']['data']['dataset']}); "
                    "a pipeline GPT reads only its own vocabulary"
                )
    else:
        name = os.path.basename(REC["model"].rstrip("/"))
        REC_MODELS = {name: (REC["model"], f"Hugging Face {name}", 0)}

    # The prepared corpora, tokenised as the models read them: a course GPT's own folder
    # (its vocabulary may be fitted on train+val), GPT-2's tokens otherwise.
    REC_DATA = {
        corpus: (
            data_dir("gpt")
            if REC_PIPELINE
            else data_folder(
                f"ablations.recurrent_gpt2.{PRESET}.corpora", corpus, "gpt2"
            )
        )
        for corpus in REC["corpora"]
    }

    rule recurrent_gpt2_evaluate:
        input:
            data=lambda wc: f"{REC_DATA[wc.corpus]}/meta.json",
            model=lambda wc: [
                path for path in REC_MODELS[wc.model][:1] if path.endswith(".pt")
            ],
        output:
            positions=f"{REC_DIR}/{{corpus}}/{{model}}/positions.csv",
            summary=f"{REC_DIR}/{{corpus}}/{{model}}/summary.json",
        log:
            f"{RESULTS}/logs/recurrent_gpt2/{{corpus}}-{{model}}.log",
        wildcard_constraints:
            corpus="|".join(REC["corpora"]),
            model="|".join(REC_MODELS),
        conda:
            CONDA_ENV
        threads: 1
        params:
            **run(
                "recurrent-gpt2",
                lambda wc, input, output: {
                    "model": REC_MODELS[wc.model][0],
                    "data": os.path.dirname(input.data),
                    "split": REC["corpora"][wc.corpus],
                    "out": os.path.dirname(output.summary),
                    **{
                        key: REC[key]
                        for key in (
                            "chunks",
                            "documents",
                            "memory_tokens",
                            "stride",
                            "batch_size",
                        )
                    },
                },
            ),
        shell:
            "{params.cmd} > {log} 2>&1"

    rule recurrent_gpt2_figure:
        input:
            summaries=lambda wc: expand(
                f"{REC_DIR}/{wc.corpus}/{{model}}/summary.json", model=REC_MODELS
            ),
            code=figure_code("recurrent_gpt2"),
        output:
            figure=report(
                f"{RESULTS}/figures/recurrent_gpt2/{{corpus}}.png",
                caption="../../report/recurrent_gpt2.rst",
                category="Studies",
                subcategory="Recurrent GPT-2",
            ),
            pdf=f"{RESULTS}/figures/recurrent_gpt2/{{corpus}}.pdf",
            table=f"{REC_DIR}/{{corpus}}.csv",
        log:
            f"{RESULTS}/logs/recurrent_gpt2/figures-{{corpus}}.log",
        wildcard_constraints:
            corpus="|".join(REC["corpora"]),
        conda:
            CONDA_ENV
        params:
            models=[kind for _, kind, _ in REC_MODELS.values()],
            seeds=[seed for _, _, seed in REC_MODELS.values()],
            title=lambda wc: f"Recurrent GPT: {wc.corpus} ({REC['corpora'][wc.corpus]})",
            bin=REC["bin"],
        script:
            "../../scripts/recurrent_gpt2.py"

    STUDY_QUESTIONS["recurrent_gpt2"] = (
        "Can a GPT read past its context, untrained, if each chunk gets the last hidden state of the previous one?"
    )
    STUDY_TARGETS["recurrent_gpt2"] = [
        target
        for corpus in REC["corpora"]
        for target in (
            f"{RESULTS}/figures/recurrent_gpt2/{corpus}.png",
            f"{REC_DIR}/{corpus}.csv",
        )
    ]
    for corpus in REC["corpora"]:
        STUDY_PANELS.append(
            (
                f"recurrent_gpt2/{corpus}",
                f"A recurrent GPT ({corpus})",
                "Bits (per character, byte or token: the axes say which) along long documents "
                "read in runs of the context length: "
                "each run after the first gets the previous run's last hidden state at its "
                "input or at every layer, against sliding windows and truncated chunks.",
            )
        )
