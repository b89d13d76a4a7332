# Research study "distillation": how many LSTM layers keep a transformer's quality when
# the LSTM learns from its soft targets, and does the LSTM generalise beyond the length it
# was trained on? Students: LSTMs of each depth, distilled from the teacher and trained
# alone (the control), over seeds; each is evaluated at 1x..8x its training length, the
# teacher at its own maximum context. On when config.ablations.distillation.enabled.

if ablation_enabled("distillation"):
    DISTILL = study("distillation")
    DISTILL_DIR = study_dir("distillation")
    DISTILL_MODES = ("distilled", "control")
    if DISTILL["teacher"] == "pipeline":  # the course's GPT, on the GPT's data
        DISTILL_TEACHER = f"{course_gpt()}/model.pt"
        DISTILL_TEACHER_FILES = [DISTILL_TEACHER]
        DISTILL_DATA = data_dir("gpt")
    else:  # a Hugging Face GPT-2 folder or cached name, on data tokenised for it
        DISTILL_TEACHER = DISTILL["teacher"]
        DISTILL_TEACHER_FILES = []
        DISTILL_DATA = data_folder(
            f"ablations.distillation.{PRESET}.data",
            DISTILL["data"]["dataset"],
            DISTILL["data"]["tokenizer"],
        )
    check_split(
        f"ablations.distillation.{PRESET}.eval_split",
        (P["gpt"] if DISTILL["teacher"] == "pipeline" else DISTILL)["data"]["dataset"],
        DISTILL["eval_split"],
    )
    DISTILL_STUDENTS = [
        {"mode": mode, "layers": layers, "seed": seed}
        for mode in DISTILL_MODES
        for layers in DISTILL["layers"]
        for seed in study_seeds("distillation")
    ]
    DISTILL_FIGURES = f"{RESULTS}/figures/distillation"

    # What a distilled student adds to its training config.
    DISTILL_TEACHING = {
        "teacher": DISTILL_TEACHER,
        "distill_temperature": DISTILL["temperature"],
        "distill_weight": DISTILL["weight"],
    }

    rule distill_student:
        input:
            data=f"{DISTILL_DATA}/meta.json",
            teacher=lambda wc: DISTILL_TEACHER_FILES if wc.mode == "distilled" else [],
        output:
            summary=f"{DISTILL_DIR}/runs/{{mode}}/lstm{{layers}}/seed{{seed}}/summary.json",
            model=f"{DISTILL_DIR}/runs/{{mode}}/lstm{{layers}}/seed{{seed}}/model.pt",
        log:
            f"{RESULTS}/logs/distillation/train-{{mode}}-lstm{{layers}}-seed{{seed}}.log",
        wildcard_constraints:
            mode="|".join(DISTILL_MODES),
            layers=r"\d+",
            seed=r"\d+",
        conda:
            CONDA_ENV
        threads: 1
        params:
            **run(
                "train",
                lambda wc, input, output: {
                    "config": {
                        "data": DISTILL_DATA,
                        "model": {
                            "family": "lstm",
                            **DISTILL["model"],
                            "n_layer": int(wc.layers),
                        },
                        "eval_splits": DISTILL["eval_split"],
                        "eval_max_tokens": DISTILL["eval_max_tokens"],
                        "seed": int(wc.seed),
                        **DISTILL["train"],
                        **tracking(
                            "distillation",
                            wc.mode,
                            f"lstm{wc.layers}",
                            f"seed{wc.seed}",
                        ),
                        **(DISTILL_TEACHING if wc.mode == "distilled" else {}),
                    },
                    "out": os.path.dirname(output.summary),
                    "resume": True,
                },
            ),
        shell:
            "{params.cmd} > {log} 2>&1"

    rule distill_lengths:
        input:
            data=f"{DISTILL_DATA}/meta.json",
            model=f"{DISTILL_DIR}/runs/{{mode}}/lstm{{layers}}/seed{{seed}}/model.pt",
        output:
            f"{DISTILL_DIR}/runs/{{mode}}/lstm{{layers}}/seed{{seed}}/lengths.json",
        log:
            f"{RESULTS}/logs/distillation/lengths-{{mode}}-lstm{{layers}}-seed{{seed}}.log",
        wildcard_constraints:
            mode="|".join(DISTILL_MODES),
            layers=r"\d+",
            seed=r"\d+",
        conda:
            CONDA_ENV
        threads: 1
        params:
            **run(
                "distillation",
                lambda wc, input, output: {
                    "model": input.model,
                    "data": os.path.dirname(input.data),
                    "out": output[0],
                    "split": DISTILL["eval_split"],
                    "lengths": [
                        m * DISTILL["model"]["context"] for m in DISTILL["lengths"]
                    ],
                    "max_tokens": DISTILL["eval_max_tokens"],
                },
            ),
        shell:
            "{params.cmd} > {log} 2>&1"

    rule distill_teacher_lengths:
        input:
            data=f"{DISTILL_DATA}/meta.json",
            teacher=DISTILL_TEACHER_FILES,
        output:
            f"{DISTILL_DIR}/teacher.json",
        log:
            f"{RESULTS}/logs/distillation/lengths-teacher.log",
        conda:
            CONDA_ENV
        threads: 1
        params:
            **run(
                "distillation",
                lambda wc, input, output: {
                    "model": DISTILL_TEACHER,  # at its own maximum context
                    "data": os.path.dirname(input.data),
                    "out": output[0],
                    "split": DISTILL["eval_split"],
                    "max_tokens": DISTILL["eval_max_tokens"],
                },
            ),
        shell:
            "{params.cmd} > {log} 2>&1"

    rule distill_figures:
        input:
            students=[
                f"{DISTILL_DIR}/runs/{s['mode']}/lstm{s['layers']}/seed{s['seed']}/lengths.json"
                for s in DISTILL_STUDENTS
            ],
            teacher=f"{DISTILL_DIR}/teacher.json",
            code=figure_code("distillation"),
        output:
            table=f"{DISTILL_DIR}/results.csv",
            layers=report(
                f"{DISTILL_FIGURES}/layers.png",
                caption="../../report/distillation.rst",
                category="Studies",
                subcategory="Distillation",
            ),
            layers_pdf=f"{DISTILL_FIGURES}/layers.pdf",
            lengths=report(
                f"{DISTILL_FIGURES}/lengths.png",
                caption="../../report/distillation.rst",
                category="Studies",
                subcategory="Distillation",
            ),
            lengths_pdf=f"{DISTILL_FIGURES}/lengths.pdf",
        log:
            f"{RESULTS}/logs/distillation/figures.log",
        conda:
            CONDA_ENV
        params:
            students=DISTILL_STUDENTS,
            teacher_name=(
                "the GPT trained here"
                if DISTILL["teacher"] == "pipeline"
                else os.path.basename(DISTILL["teacher"].rstrip("/"))
            ),
        script:
            "../../scripts/distillation.py"

    STUDY_QUESTIONS["distillation"] = (
        "How many LSTM layers keep a transformer's quality, and do LSTMs generalise to longer contexts?"
    )
    STUDY_TARGETS["distillation"] = [
        f"{DISTILL_DIR}/results.csv",
        f"{DISTILL_FIGURES}/layers.png",
        f"{DISTILL_FIGURES}/lengths.png",
    ]
    STUDY_PANELS += [
        (
            "distillation/layers",
            "Distilling the GPT into LSTMs",
            "Bits per token of LSTM students at their training length, by depth: trained "
            "on the teacher's soft targets (distilled) or alone (control); dashed: the teacher.",
        ),
        (
            "distillation/lengths",
            "LSTMs beyond their training length",
            "Bits per token of the same students evaluated on windows of 1 to 8 times the "
            "length they were trained on; the teacher cannot read beyond its context.",
        ),
    ]
