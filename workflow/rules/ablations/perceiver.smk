# Research study "perceiver": Perceiver AR against a GPT across context lengths, at equal
# parameter count and equal training FLOPs (config.ablations.perceiver). Per data set:
# a plan per context (matched widths, step counts) -> runs of both models at every context
# and seed (the `train` stage) and the measured cost of each model -> one table, one figure.
# One plan per context, so that adding a context plans and trains that context's runs alone.

if ablation_enabled("perceiver"):
    PERCEIVER = study("perceiver")
    PERCEIVER_DIR = study_dir("perceiver")
    for d in PERCEIVER["data"]:
        check_split(f"ablations.perceiver.{PRESET}.data", d["dataset"], d["eval_split"])
    # each data set's folder name under data/ and the split its runs are evaluated on
    PERCEIVER_DATA = {
        os.path.basename(
            data_folder(
                f"ablations.perceiver.{PRESET}.data", d["dataset"], d["tokenizer"]
            )
        ): d["eval_split"]
        for d in PERCEIVER["data"]
    }
    if len(PERCEIVER_DATA) < len(PERCEIVER["data"]):  # one folder of runs each
        stop(
            f"config: ablations.perceiver.{PRESET}.data: a data set with one tokenizer "
            "comes once (its runs are scored on one eval_split)"
        )
    PERCEIVER_CONTEXTS = [str(context) for context in PERCEIVER["contexts"]]
    PERCEIVER_VARIANTS = [
        f"{family}-{context}"
        for context in PERCEIVER_CONTEXTS
        for family in ("gpt", "perceiver")
    ]
    # the plan stage's settings: all but the data sets, the contexts (a plan each), the
    # seeds and the cost measurement's
    PERCEIVER_PLAN = {
        k: v
        for k, v in PERCEIVER.items()
        if k not in ("data", "contexts", "cost_steps", "seeds")
    }

    rule perceiver_plan:
        input:
            f"{RESULTS}/data/{{data}}/meta.json",
        output:
            f"{PERCEIVER_DIR}/{{data}}/plans/{{context}}.json",
        log:
            f"{RESULTS}/logs/perceiver/plan-{{data}}-{{context}}.log",
        wildcard_constraints:
            data="|".join(PERCEIVER_DATA),
            context="|".join(PERCEIVER_CONTEXTS),
        conda:
            CONDA_ENV
        threads: 1
        params:
            **run(
                "perceiver-plan",
                lambda wc, input, output: {
                    "data": os.path.dirname(input[0]),
                    "out": output[0],
                    "eval_split": PERCEIVER_DATA[wc.data],
                    "contexts": [int(wc.context)],
                    **PERCEIVER_PLAN,
                },
            ),
        shell:
            "{params.cmd} > {log} 2>&1"

    rule perceiver_train:
        input:
            # the plan of the variant's context (gpt-64: 64's)
            plan=lambda wc: f"{PERCEIVER_DIR}/{wc.data}/plans/{wc.variant.rsplit('-', 1)[1]}.json",
        output:
            summary=f"{PERCEIVER_DIR}/{{data}}/runs/{{variant}}/seed{{seed}}/summary.json",
            model=f"{PERCEIVER_DIR}/{{data}}/runs/{{variant}}/seed{{seed}}/model.pt",
        log:
            f"{RESULTS}/logs/perceiver/train-{{data}}-{{variant}}-seed{{seed}}.log",
        wildcard_constraints:
            data="|".join(PERCEIVER_DATA),
            variant="|".join(PERCEIVER_VARIANTS),
            seed=r"\d+",
        conda:
            CONDA_ENV
        threads: 1
        params:
            **run(
                "train",
                lambda wc, input, output: {
                    # the planned config (read when the job starts), seed and tracking
                    "config": planned_config(input.plan, wc.variant)
                    | {"seed": int(wc.seed)}
                    | tracking("perceiver", wc.data, wc.variant, f"seed{wc.seed}"),
                    "out": os.path.dirname(output.summary),
                    "resume": True,
                },
            ),
        shell:
            "{params.cmd} > {log} 2>&1"

    rule perceiver_cost:
        input:
            plans=expand(
                f"{PERCEIVER_DIR}/{{{{data}}}}/plans/{{context}}.json",
                context=PERCEIVER_CONTEXTS,
            ),
        output:
            f"{PERCEIVER_DIR}/{{data}}/cost.json",
        log:
            f"{RESULTS}/logs/perceiver/cost-{{data}}.log",
        wildcard_constraints:
            data="|".join(PERCEIVER_DATA),
        conda:
            CONDA_ENV
        threads: 1
        params:
            **run(
                "perceiver-cost",
                lambda wc, input, output: {
                    "plans": list(input.plans),
                    "out": output[0],
                    "steps": PERCEIVER.get("cost_steps", 3),
                    "tracking": tracking(
                        "perceiver", wc.data, "cost", job_type="cost"
                    ),
                },
            ),
        shell:
            "{params.cmd} > {log} 2>&1"

    rule perceiver_figure:
        input:
            plans=expand(
                f"{PERCEIVER_DIR}/{{data}}/plans/{{context}}.json",
                data=PERCEIVER_DATA,
                context=PERCEIVER_CONTEXTS,
            ),
            costs=expand(f"{PERCEIVER_DIR}/{{data}}/cost.json", data=PERCEIVER_DATA),
            summaries=expand(
                f"{PERCEIVER_DIR}/{{data}}/runs/{{variant}}/seed{{seed}}/summary.json",
                data=PERCEIVER_DATA,
                variant=PERCEIVER_VARIANTS,
                seed=study_seeds("perceiver"),
            ),
            code=figure_code("perceiver"),
        output:
            table=f"{PERCEIVER_DIR}/results.csv",
            png=report(
                f"{RESULTS}/figures/perceiver/context.png",
                caption="../../report/perceiver.rst",
                category="Studies",
                subcategory="Perceiver",
            ),
            pdf=f"{RESULTS}/figures/perceiver/context.pdf",
        log:
            f"{RESULTS}/logs/perceiver/figures.log",
        conda:
            CONDA_ENV
        params:
            splits=PERCEIVER_DATA,
            title="Perceiver AR vs GPT: equal parameters, equal training FLOPs",
        script:
            "../../scripts/perceiver.py"

    STUDY_QUESTIONS["perceiver"] = "Perceiver AR or GPT for long contexts?"
    STUDY_TARGETS["perceiver"] = [
        f"{PERCEIVER_DIR}/results.csv",
        f"{RESULTS}/figures/perceiver/context.png",
    ]
    STUDY_PANELS.append(
        (
            "perceiver/context",
            "Perceiver AR vs GPT",
            # the data's unit: characters for a -chars data set, bytes for any other
            "Bits per "
            + " or per ".join(
                sorted(
                    {
                        "character" if d.endswith("-chars") else "byte"
                        for d in PERCEIVER_DATA
                    }
                )
            )
            + ", training throughput and peak memory against context "
            "length, at equal parameters and equal training FLOPs; points: seeds.",
        )
    )
