# Research study "cramming": how good a GPT can one fixed budget of training time buy?
# The schedule follows the clock (clock: time): warm-up, then decay that ends exactly when
# the budget is spent, the elapsed budget kept in every checkpoint across requeues. The
# baseline recipe trains at several budgets (quality vs budget); each ablation changes one
# recipe choice and trains for the whole budget. The course GPT and a published result
# are the references. On when config.ablations.cramming.enabled is true.

if ablation_enabled("cramming"):
    CRAMMING = study("cramming")
    CRAMMING_DIR = study_dir("cramming")
    CRAMMING_RECIPES = {"baseline": {}, **CRAMMING["ablations"]}
    CRAMMING_BUDGET = CRAMMING["budget_s"]
    CRAMMING_SEEDS = study_seeds("cramming")
    # Budgets as they appear in run folder names: seconds, to the millisecond, without
    # trailing zeros (not :g, whose 1e+06 no folder pattern reads)
    CRAMMING_BUDGETS = [
        f"{CRAMMING_BUDGET * fraction:.3f}".rstrip("0").rstrip(".")
        for fraction in sorted(CRAMMING["budget_fractions"]) + [1]
    ]
    if len(set(CRAMMING_BUDGETS)) < len(CRAMMING_BUDGETS):
        stop(
            f"config: ablations.cramming.{PRESET}.budget_fractions: two budgets within a "
            f"millisecond ({', '.join(CRAMMING_BUDGETS)} s); leave one out"
        )
    CRAMMING_UNIT = lm_metric().split("/")[1]  # bits_per_char, bits_per_byte, ...
    CRAMMING_METRIC = f"{CRAMMING['split']}/{CRAMMING_UNIT}"
    if CRAMMING["split"] not in eval_splits("gpt"):
        stop(
            f"config: ablations.cramming.{PRESET}.split {CRAMMING['split']!r} must be one "
            f"of presets.{PRESET}.gpt.eval_splits ({', '.join(eval_splits('gpt'))}): the "
            "course GPT it is compared with is scored there; change either"
        )

    CRAMMING_RUN = f"{CRAMMING_DIR}/runs/{{recipe}}/budget{{budget}}s/seed{{seed}}"
    # The baseline at every budget, each ablation at the whole budget, every seed.
    CRAMMING_RUNS = [
        os.path.join(
            CRAMMING_RUN.format(recipe=recipe, budget=budget, seed=seed), "summary.json"
        )
        for recipe in CRAMMING_RECIPES
        for budget in (
            CRAMMING_BUDGETS if recipe == "baseline" else CRAMMING_BUDGETS[-1:]
        )
        for seed in CRAMMING_SEEDS
    ]
    # The training config of each recipe: the baseline with the recipe's one change, its
    # schedule on the clock, the course GPT's data set with a vocabulary fitted on what
    # the recipe trains on; each run adds its seed, its budget (time_budget_s) and its
    # tracking.
    CRAMMING_SPECS = {
        recipe: {
            "data": data_dir("gpt", train.get("train_split", "train")),
            "model": {"family": "gpt", **CRAMMING["model"], **change.get("model", {})},
            "eval_splits": CRAMMING["split"],
            **train,
            "clock": "time",
            "max_steps": 0,
        }
        for recipe, change in CRAMMING_RECIPES.items()
        for train in [CRAMMING["train"] | change.get("train", {})]
    }
    for recipe, spec in CRAMMING_SPECS.items():
        where = f"ablations.cramming.{PRESET}: recipe {recipe}"
        check_study_run(where, "gpt", P["gpt"]["data"]["dataset"], spec)

    # The course GPT's runs, over the preset's seeds (the study's may differ), drawn beside
    # the recipe where they train on the same splits: a final run's (train+val) has
    # trained on the split both are scored on.
    CRAMMING_REFERENCE = (
        [f"{course_gpt(seed)}/summary.json" for seed in SEEDS]
        if set(P["gpt"]["train"].get("train_split", "train").split("+"))
        == set(CRAMMING_SPECS["baseline"].get("train_split", "train").split("+"))
        else []
    )

    # What the budget figure draws beside the recipe, as its caption names them.
    CRAMMING_SEEN_WITH = " and ".join(
        name
        for name, drawn in (
            ("the course GPT", CRAMMING_REFERENCE),
            ("a published result", CRAMMING.get("published")),
        )
        if drawn
    )

    rule cramming_lr_range:
        input:
            data=f"{CRAMMING_SPECS['baseline']['data']}/meta.json",
        output:
            choice=f"{CRAMMING_DIR}/tune/lr_range.json",
            curve=f"{CRAMMING_DIR}/tune/lr_range.csv",
        log:
            f"{RESULTS}/logs/cramming/lr_range.log",
        conda:
            CONDA_ENV
        threads: 1
        params:
            **run(
                "lr-range",
                lambda wc, input, output: {
                    "config": CRAMMING_SPECS["baseline"]
                    | {"seed": CRAMMING_SEEDS[0], "time_budget_s": CRAMMING_BUDGET}
                    | tracking("cramming", "lr-range", job_type="lr-range"),
                    "out": os.path.dirname(output.choice),
                    **P["tune"]["lr_range"],
                },
                unread=RUN_BOOKKEEPING | RUN_SCHEDULE,
            ),
        shell:
            "{params.cmd} > {log} 2>&1"

    rule cramming_train:
        input:
            data=lambda wc: f"{CRAMMING_SPECS[wc.recipe]['data']}/meta.json",
            lr=rules.cramming_lr_range.output.choice,
        output:
            summary=f"{CRAMMING_RUN}/summary.json",
            model=f"{CRAMMING_RUN}/model.pt",
        log:
            f"{RESULTS}/logs/cramming/{{recipe}}-budget{{budget}}s-seed{{seed}}.log",
        wildcard_constraints:
            recipe="|".join(CRAMMING_RECIPES),
            budget=r"\d+(\.\d+)?",
            seed=r"\d+",
        conda:
            CONDA_ENV
        threads: 1
        params:
            **run(
                "train",
                lambda wc, input, output: {
                    "config": with_tuned(
                        CRAMMING_SPECS[wc.recipe]
                        | {"seed": int(wc.seed), "time_budget_s": float(wc.budget)}
                        | tracking(
                            "cramming",
                            wc.recipe,
                            f"budget{wc.budget}s",
                            f"seed{wc.seed}",
                        ),
                        lr=input.lr,
                    ),
                    "out": os.path.dirname(output.summary),
                    "resume": True,
                },
            ),
        shell:
            "{params.cmd} > {log} 2>&1"

    rule cramming_figures:
        input:
            runs=CRAMMING_RUNS,
            reference=CRAMMING_REFERENCE,
            code=figure_code("cramming"),
        output:
            runs=f"{CRAMMING_DIR}/runs.csv",
            ablations=f"{CRAMMING_DIR}/ablations.csv",
            budget=report(
                f"{RESULTS}/figures/cramming/budget.png",
                caption="../../report/cramming.rst",
                category="Studies",
                subcategory="Cramming",
            ),
            budget_pdf=f"{RESULTS}/figures/cramming/budget.pdf",
            ablations_figure=report(
                f"{RESULTS}/figures/cramming/ablations.png",
                caption="../../report/cramming.rst",
                category="Studies",
                subcategory="Cramming",
            ),
            ablations_pdf=f"{RESULTS}/figures/cramming/ablations.pdf",
        log:
            f"{RESULTS}/logs/cramming/figures.log",
        conda:
            CONDA_ENV
        params:
            metric=CRAMMING_METRIC,
            budget_s=CRAMMING_BUDGET,
            order=list(CRAMMING_RECIPES),
            published=CRAMMING.get("published"),
            reference_label=course_gpt_label(),
            title=f"Cramming: a GPT on {P['gpt']['data']['dataset']} in a fixed time budget",
        script:
            "../../scripts/cramming.py"

    STUDY_QUESTIONS["cramming"] = "How good a GPT fits in a fixed time budget?"
    STUDY_TARGETS["cramming"] = [
        rules.cramming_figures.output.runs,
        rules.cramming_figures.output.ablations,
        rules.cramming_figures.output.budget,
        rules.cramming_figures.output.ablations_figure,
    ]
    STUDY_PANELS += [
        (
            "cramming/budget",
            "Cramming: quality vs time budget",
            f"{CRAMMING_UNIT.replace('_', ' ').capitalize()} of the baseline recipe "
            "trained for each budget of training time (its LR schedule on the clock)"
            + (
                f", with {CRAMMING_SEEN_WITH} for reference"
                if CRAMMING_SEEN_WITH
                else ""
            )
            + ".",
        ),
        (
            "cramming/ablations",
            "Cramming: one recipe choice at a time",
            f"Change in {CRAMMING_UNIT.replace('_', ' ')} when one choice of the "
            "baseline recipe is changed, at the whole budget, seed by seed (above zero: "
            "worse than the baseline).",
        ),
    ]
