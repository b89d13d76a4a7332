# Research study "encoder_decoder" (week 6): does a task that maps a source sequence to a
# target sequence (copy, reverse, sort) favour an encoder/decoder, or does a decoder-only
# GPT given the source as a prefix do as well? Both architectures, with nearly the same
# number of parameters, train on the same examples for the same steps, over seeds; each
# answers test sources of every length, also longer than any in training, by greedy
# decoding. On when config.ablations.encoder_decoder.enabled is true.

if ablation_enabled("encoder_decoder"):
    SEQ2SEQ = study("encoder_decoder")
    SEQ2SEQ_DIR = study_dir("encoder_decoder")
    SEQ2SEQ_ARCHITECTURES = ("encoder_decoder", "decoder_only")
    SEQ2SEQ_FIGURE = f"{RESULTS}/figures/encoder_decoder/accuracy_by_length"

    SEQ2SEQ_TASK = SEQ2SEQ["task"]["name"]
    # trained on lengths min..max, tested up to test_max (as Seq2SeqConfig checks in its job)
    for shorter, longer in (
        ("min_length", "max_length"),
        ("max_length", "test_max_length"),
    ):
        if SEQ2SEQ["task"][longer] < SEQ2SEQ["task"][shorter]:
            stop(
                f"config: ablations.encoder_decoder.{PRESET}.task.{longer}: "
                f"{SEQ2SEQ['task'][longer]} is below {shorter}={SEQ2SEQ['task'][shorter]}"
            )
    SEQ2SEQ_RUN = f"{SEQ2SEQ_DIR}/runs/{{architecture}}/seed{{seed}}"
    # Every run's Seq2SeqConfig (train/seq2seq.py) but its architecture, seed and tags.
    SEQ2SEQ_SETTINGS = {
        "task": SEQ2SEQ_TASK,
        **{key: value for key, value in SEQ2SEQ["task"].items() if key != "name"},
        "model": SEQ2SEQ["model"],
        "gpt_layers": SEQ2SEQ["gpt_layers"],
        **SEQ2SEQ["train"],
    }

    rule encoder_decoder_train:
        output:
            summary=f"{SEQ2SEQ_RUN}/summary.json",
            accuracy=f"{SEQ2SEQ_RUN}/accuracy.csv",
        log:
            f"{RESULTS}/logs/encoder_decoder/{{architecture}}-seed{{seed}}.log",
        wildcard_constraints:
            architecture="|".join(SEQ2SEQ_ARCHITECTURES),
            seed=r"\d+",
        conda:
            CONDA_ENV
        threads: 1
        params:
            **run(
                "encoder-decoder",
                lambda wc, input, output: {
                    "config": SEQ2SEQ_SETTINGS
                    | {"architecture": wc.architecture, "seed": int(wc.seed)}
                    | tracking(
                        "encoder_decoder",
                        wc.architecture,
                        SEQ2SEQ_TASK,
                        f"seed{wc.seed}",
                    ),
                    "out": os.path.dirname(output.summary),
                    "resume": True,
                },
            ),
        shell:
            "{params.cmd} > {log} 2>&1"

    rule encoder_decoder_figure:
        input:
            runs=expand(
                f"{SEQ2SEQ_RUN}/summary.json",
                architecture=SEQ2SEQ_ARCHITECTURES,
                seed=study_seeds("encoder_decoder"),
            ),
            code=figure_code("encoder_decoder"),
        output:
            lengths=f"{SEQ2SEQ_DIR}/accuracy_by_length.csv",
            runs=f"{SEQ2SEQ_DIR}/runs.csv",
            figure=report(
                f"{SEQ2SEQ_FIGURE}.png",
                caption="../../report/encoder_decoder.rst",
                category="Studies",
                subcategory="Encoder/decoder",
            ),
            pdf=f"{SEQ2SEQ_FIGURE}.pdf",
        log:
            f"{RESULTS}/logs/encoder_decoder/figures.log",
        conda:
            CONDA_ENV
        params:
            title="Encoder/decoder vs decoder-only",
        script:
            "../../scripts/encoder_decoder.py"

    STUDY_QUESTIONS["encoder_decoder"] = (
        "Does a seq2seq task need an encoder/decoder, or does a GPT reading the source as a prefix do as well?"
    )
    STUDY_TARGETS["encoder_decoder"] = [
        f"{SEQ2SEQ_FIGURE}.png",
        f"{SEQ2SEQ_DIR}/accuracy_by_length.csv",
    ]
    STUDY_PANELS.append(
        (
            "encoder_decoder/accuracy_by_length",
            "Encoder/decoder vs decoder-only",
            f"Greedy answers to the {SEQ2SEQ_TASK} task at each length: an "
            "encoder/decoder against a GPT that reads the source as a prefix, with nearly "
            "the same parameters, examples and steps; scored on strings never trained on. "
            "Shaded: longer than in training.",
        )
    )
