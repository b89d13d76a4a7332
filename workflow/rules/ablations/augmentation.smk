# Research study "augmentation": does augmenting the training data make a model more
# robust to out-of-domain data? The course classifier (and a byte-level GPT) trains on
# the original reviews plus augmented copies, one strategy at a time (data/augment.py),
# and is scored in domain and on out-of-domain sets encoded with the training vocabulary.
#
#   data/{model}/augmented-{strategy}/   the training data with its train split augmented
#   data/{model}/ood-{dataset}/          an out-of-domain set, training vocabulary
#   runs/{model}/{strategy}/seed{k}/     training runs (the `train` stage)
#   evaluations/{model}-{strategy}-seed{k}.json, results.csv, summary.csv
#
# {model} is `classifier` (the course classifier, its data and tuned LR/batch size) or
# `lm` (the course GPT's model on the bytes of config `lm.dataset`, at the GPT's tuning).

if ablation_enabled("augmentation"):
    AUG = study("augmentation")
    AUG_DIR = study_dir("augmentation")
    AUG_SEEDS = study_seeds("augmentation")
    # What each study model is in the course pipeline: its model, and the variant it uses.
    AUG_COURSE_MODEL = {"classifier": "classifier", "lm": "gpt"}
    AUG_VARIANT = {
        "classifier": {"attention": MAIN_VARIANT["attention"]},
        "lm": {"position": MAIN_VARIANT["position"]},
    }
    IN_DOMAIN_SPLIT = "test"
    # The training config of each model (data, seed and tracking are the run's): the course
    # model's, with the study's `train` settings on top. No evaluation while training: the
    # evaluate rule scores every set, in domain included, once.
    AUG_TRAIN_SPEC = {
        model: train_spec(AUG_COURSE_MODEL[model], **AUG_VARIANT[model])
        | {"eval_splits": ""}
        | AUG[model]["train"]
        for model in AUG_COURSE_MODEL
    }
    AUG_DATASET = {
        "classifier": P["classifier"]["data"]["dataset"],
        "lm": AUG["lm"]["dataset"],
    }
    for model, spec in AUG_TRAIN_SPEC.items():
        where = f"ablations.augmentation.{PRESET}.{model}"
        check_study_run(where, AUG_COURSE_MODEL[model], AUG_DATASET[model], spec)
    # The folder each model trains on without augmentation: the classifier's vocabulary
    # is fitted on the splits its runs train on.
    AUG_BASE_DATA = {
        "classifier": data_dir(
            "classifier", AUG_TRAIN_SPEC["classifier"].get("train_split")
        ),
        "lm": data_folder(
            f"ablations.augmentation.{PRESET}.lm", AUG_DATASET["lm"], "bytes"
        ),
    }
    # The folder of each (model, strategy): `none` is the base folder itself, unless the
    # model trains on `reviews` of its training reviews (then a folder of those alone).
    AUG_TRAIN_DATA = {
        (model, strategy): (
            AUG_BASE_DATA[model]
            if strategy == "none" and not AUG[model].get("reviews")
            else f"{AUG_DIR}/data/{model}/augmented-{strategy}"
        )
        for model in AUG_COURSE_MODEL
        for strategy in AUG[model]["strategies"]
    }
    # What a trained model is scored on: in domain, then each out-of-domain set.
    AUG_EVALUATION_SETS = {
        model: {"in-domain": {"data": AUG_BASE_DATA[model], "split": IN_DOMAIN_SPLIT}}
        | {
            f"{dataset} {split}": {
                "data": f"{AUG_DIR}/data/{model}/ood-{dataset}",
                "split": split,
            }
            for dataset, split in AUG[model]["ood"].items()
        }
        for model in AUG_COURSE_MODEL
    }
    aug_models = "classifier|lm"
    aug_strategies = "|".join(
        {s for model in AUG_COURSE_MODEL for s in AUG[model]["strategies"]}
    )

    rule augmentation_ood_data:
        input:
            base=lambda wc: f"{AUG_BASE_DATA[wc.model]}/meta.json",
        output:
            f"{AUG_DIR}/data/{{model}}/ood-{{dataset}}/meta.json",
        log:
            f"{RESULTS}/logs/augmentation/ood-{{model}}-{{dataset}}.log",
        wildcard_constraints:
            model=aug_models,
        conda:
            CONDA_ENV
        threads: 1
        params:
            **run(
                "prepare",
                lambda wc, input, output: {
                    "dataset": wc.dataset,
                    "out": os.path.dirname(output[0]),
                    "tokenizer_from": os.path.dirname(input.base),
                    "mirror": MIRROR,
                },
            ),
        shell:
            "{params.cmd} > {log} 2>&1"

    rule augmentation_augment:
        input:
            base=lambda wc: f"{AUG_BASE_DATA[wc.model]}/meta.json",
        output:
            f"{AUG_DIR}/data/{{model}}/augmented-{{strategy}}/meta.json",
        log:
            f"{RESULTS}/logs/augmentation/augment-{{model}}-{{strategy}}.log",
        wildcard_constraints:
            model=aug_models,
            strategy=aug_strategies,
        conda:
            CONDA_ENV
        threads: 1
        params:
            **run(
                "augment",
                lambda wc, input, output: {
                    "base": os.path.dirname(input.base),
                    "out": os.path.dirname(output[0]),
                    "strategy": wc.strategy,
                    "rate": AUG[wc.model]["strategies"][wc.strategy],
                    "copies": AUG["copies"],
                    "seed": 0,
                    "reviews": AUG[wc.model].get("reviews", 0),
                    "mirror": MIRROR,
                },
            ),
        shell:
            "{params.cmd} > {log} 2>&1"

    rule augmentation_train:
        input:
            unpack(
                lambda wc: tuning_inputs(
                    AUG_TRAIN_SPEC[wc.model], AUG_COURSE_MODEL[wc.model]
                )
            ),
            data=lambda wc: f"{AUG_TRAIN_DATA[wc.model, wc.strategy]}/meta.json",
        output:
            summary=f"{AUG_DIR}/runs/{{model}}/{{strategy}}/seed{{seed}}/summary.json",
            model=f"{AUG_DIR}/runs/{{model}}/{{strategy}}/seed{{seed}}/model.pt",
        log:
            f"{RESULTS}/logs/augmentation/train-{{model}}-{{strategy}}-seed{{seed}}.log",
        wildcard_constraints:
            model=aug_models,
            strategy=aug_strategies,
            seed=r"\d+",
        conda:
            CONDA_ENV
        threads: 1
        params:
            **run(
                "train",
                lambda wc, input, output: {
                    "config": with_tuned(
                        AUG_TRAIN_SPEC[wc.model]
                        | {
                            "data": AUG_TRAIN_DATA[wc.model, wc.strategy],
                            "seed": int(wc.seed),
                        }
                        | tracking(
                            "augmentation",
                            wc.model,
                            wc.strategy,
                            f"seed{wc.seed}",
                        ),
                        **tuned_choices(input),
                    ),
                    "out": os.path.dirname(output.summary),
                    "resume": True,
                },
            ),
        shell:
            "{params.cmd} > {log} 2>&1"

    rule augmentation_evaluate:
        input:
            model=f"{AUG_DIR}/runs/{{model}}/{{strategy}}/seed{{seed}}/model.pt",
            data=lambda wc: [
                f"{s['data']}/meta.json"
                for s in AUG_EVALUATION_SETS[wc.model].values()
            ],
        output:
            f"{AUG_DIR}/evaluations/{{model}}-{{strategy}}-seed{{seed}}.json",
        log:
            f"{RESULTS}/logs/augmentation/evaluate-{{model}}-{{strategy}}-seed{{seed}}.log",
        wildcard_constraints:
            model=aug_models,
            strategy=aug_strategies,
            seed=r"\d+",
        conda:
            CONDA_ENV
        threads: 1
        params:
            **run(
                "evaluate",
                lambda wc, input, output: {
                    "model": input.model,
                    "sets": AUG_EVALUATION_SETS[wc.model],
                    "out": output[0],
                    "max_tokens": (
                        AUG["lm"]["eval_max_tokens"] if wc.model == "lm" else 0
                    ),
                },
            ),
        shell:
            "{params.cmd} > {log} 2>&1"

    rule augmentation_figures:
        input:
            evaluations=[
                f"{AUG_DIR}/evaluations/{model}-{strategy}-seed{seed}.json"
                for model in AUG_COURSE_MODEL
                for strategy in AUG[model]["strategies"]
                for seed in AUG_SEEDS
            ],
            code=figure_code("augmentation"),
        output:
            results=f"{AUG_DIR}/results.csv",
            summary=f"{AUG_DIR}/summary.csv",
            classifier=report(
                f"{RESULTS}/figures/augmentation/classifier.png",
                caption="../../report/augmentation.rst",
                category="Studies",
                subcategory="Augmentation",
            ),
            classifier_pdf=f"{RESULTS}/figures/augmentation/classifier.pdf",
            lm=report(
                f"{RESULTS}/figures/augmentation/lm.png",
                caption="../../report/augmentation.rst",
                category="Studies",
                subcategory="Augmentation",
            ),
            lm_pdf=f"{RESULTS}/figures/augmentation/lm.pdf",
        log:
            f"{RESULTS}/logs/augmentation/figures.log",
        conda:
            CONDA_ENV
        params:
            order={model: list(AUG[model]["strategies"]) for model in AUG_COURSE_MODEL},
            rates={model: AUG[model]["strategies"] for model in AUG_COURSE_MODEL},
            title=f"preset {PRESET}",
        script:
            "../../scripts/augmentation.py"

    STUDY_QUESTIONS["augmentation"] = (
        "Does augmenting the training data make a model more robust out of domain?"
    )
    STUDY_TARGETS["augmentation"] = [
        f"{AUG_DIR}/summary.csv",
        f"{RESULTS}/figures/augmentation/classifier.png",
        f"{RESULTS}/figures/augmentation/lm.png",
    ]
    STUDY_PANELS += [
        (
            "augmentation/classifier",
            "Augmentation vs out-of-domain data",
            "Accuracy of the classifier trained with each augmentation of its training "
            "reviews, in domain and on out-of-domain sets; mean ± sd over seeds.",
        ),
        (
            "augmentation/lm",
            "Augmentation: language model",
            "Bits per byte of a byte-level GPT trained on the reviews with and without "
            "augmentation, on in-domain and out-of-domain text (lower is better).",
        ),
    ]
