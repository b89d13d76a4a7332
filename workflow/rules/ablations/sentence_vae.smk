# Research study "sentence_vae": a frozen GPT turned into a sentence VAE by adapters, and
# what keeps its latent code alive: KL annealing (constant, linear, cyclical) and free
# bits. Each variant x seed is one run; the tables and figures compare them.
#
#   base: pipeline   the course's trained GPT (position/learned, the preset's first seed)
#                    and its data
#         train      a GPT trained here (the `train` stage) on the study's data set
#         gpt2       Hugging Face GPT-2 (`name`: a hub name or a save_pretrained folder)

if ablation_enabled("sentence_vae"):
    VAE = study("sentence_vae")
    VAE_DIR = study_dir("sentence_vae")
    VAE_FIGURES = f"{RESULTS}/figures/sentence_vae"
    VAE_VARIANTS = list(VAE["variants"])
    VAE_BASE = VAE["base"]
    if VAE_BASE["source"] == "pipeline":
        if VAE["data"] != P["gpt"]["data"]:
            stop(
                f"config: ablations.sentence_vae.{PRESET}.data must equal the pipeline GPT's data "
                f"({P['gpt']['data']}) with base.source: pipeline"
            )
        VAE_DATA = data_dir("gpt")
        VAE_BASE_MODEL = f"{course_gpt()}/model.pt"
    else:  # a vocabulary fitted on what the base GPT trains on
        VAE_BASE_SPLIT = VAE_BASE.get("train", {}).get("train_split", "train")
        check_split(
            f"ablations.sentence_vae.{PRESET}.base.train.train_split",
            VAE["data"]["dataset"],
            VAE_BASE_SPLIT,
        )
        VAE_DATA = data_folder(
            f"ablations.sentence_vae.{PRESET}.data",
            VAE["data"]["dataset"],
            VAE["data"]["tokenizer"],
            VAE_BASE_SPLIT,
        )
        VAE_BASE_MODEL = f"{VAE_DIR}/base/model.pt"
    for split in ("train", "test"):  # the sentences it learns from and is scored on
        check_split(
            f"ablations.sentence_vae.{PRESET}.data", VAE["data"]["dataset"], split
        )

    rule sentence_vae_base:
        input:
            data=f"{VAE_DATA}/meta.json",
        output:
            summary=f"{VAE_DIR}/base/summary.json",
            model=f"{VAE_DIR}/base/model.pt",
        log:
            f"{RESULTS}/logs/sentence_vae/base.log",
        conda:
            CONDA_ENV
        threads: 1
        params:
            **run(
                "train",
                lambda wc, input, output: {
                    "config": {
                        "data": os.path.dirname(input.data),
                        "model": {"family": "gpt", **VAE_BASE.get("model", {})},
                        "eval_splits": "test",
                        "seed": 0,
                        **tracking("sentence_vae", "base"),
                        **VAE_BASE.get("train", {}),
                    },
                    "out": os.path.dirname(output.summary),
                    "resume": True,
                },
            ),
        shell:
            "{params.cmd} > {log} 2>&1"

    rule sentence_vae_run:
        input:
            data=f"{VAE_DATA}/meta.json",
            base=[] if VAE_BASE["source"] == "gpt2" else VAE_BASE_MODEL,
        output:
            summary=f"{VAE_DIR}/runs/vae/{{variant}}/seed{{seed}}/summary.json",
            latents=f"{VAE_DIR}/runs/vae/{{variant}}/seed{{seed}}/latents.npz",
            examples=f"{VAE_DIR}/runs/vae/{{variant}}/seed{{seed}}/examples.json",
        log:
            f"{RESULTS}/logs/sentence_vae/{{variant}}-seed{{seed}}.log",
        wildcard_constraints:
            variant="|".join(VAE_VARIANTS),
            seed=r"\d+",
        conda:
            CONDA_ENV
        threads: 1
        params:
            **run(
                "sentence-vae",
                lambda wc, input, output: {
                    "base": (
                        {"gpt2": VAE_BASE["name"]}
                        if VAE_BASE["source"] == "gpt2"
                        else {"model": input.base}
                    ),
                    "data": os.path.dirname(input.data),
                    "out": os.path.dirname(output.summary),
                    "sentences": VAE["sentences"],
                    "vae": VAE["vae"],
                    "train": {
                        **VAE["train"],
                        **VAE["variants"][wc.variant],
                        "seed": int(wc.seed),
                        **tracking(
                            "sentence_vae",
                            wc.variant,
                            f"seed{wc.seed}",
                            job_type="sentence-vae",
                        ),
                    },
                    "resume": True,
                },
            ),
        shell:
            "{params.cmd} > {log} 2>&1"

    rule sentence_vae_figures:
        input:
            summaries=expand(
                f"{VAE_DIR}/runs/vae/{{variant}}/seed{{seed}}/summary.json",
                variant=VAE_VARIANTS,
                seed=study_seeds("sentence_vae"),
            ),
            latents=expand(
                f"{VAE_DIR}/runs/vae/{{variant}}/seed{study_seeds('sentence_vae')[0]}/latents.npz",
                variant=VAE_VARIANTS,
            ),
            examples=f"{VAE_DIR}/runs/vae/{VAE_VARIANTS[-1]}/seed{study_seeds('sentence_vae')[0]}/examples.json",
            # the β panel draws the KL schedule itself (train/vae.py)
            code=figure_code("sentence_vae") + [f"{SOURCE}/train/vae.py"],
        output:
            results=f"{VAE_DIR}/results.csv",
            curves=f"{VAE_DIR}/curves.csv",
            training=report(
                f"{VAE_FIGURES}/training.png",
                caption="../../report/sentence_vae.rst",
                category="Studies",
                subcategory="Sentence VAE",
            ),
            training_pdf=f"{VAE_FIGURES}/training.pdf",
            summary=report(
                f"{VAE_FIGURES}/summary.png",
                caption="../../report/sentence_vae.rst",
                category="Studies",
                subcategory="Sentence VAE",
            ),
            summary_pdf=f"{VAE_FIGURES}/summary.pdf",
            latent=report(
                f"{VAE_FIGURES}/latent.png",
                caption="../../report/sentence_vae.rst",
                category="Studies",
                subcategory="Sentence VAE",
            ),
            latent_pdf=f"{VAE_FIGURES}/latent.pdf",
            interpolations=report(
                f"{VAE_FIGURES}/interpolations.png",
                caption="../../report/sentence_vae.rst",
                category="Studies",
                subcategory="Sentence VAE",
            ),
            interpolations_pdf=f"{VAE_FIGURES}/interpolations.pdf",
        log:
            f"{RESULTS}/logs/sentence_vae/figures.log",
        conda:
            CONDA_ENV
        params:
            variants=VAE_VARIANTS,
            seeds=study_seeds("sentence_vae"),
            example_variant=VAE_VARIANTS[-1],
        script:
            "../../scripts/sentence_vae.py"

    STUDY_QUESTIONS["sentence_vae"] = (
        "Can a frozen GPT become a sentence VAE through adapters, and is sentiment linear in z?"
    )
    STUDY_TARGETS["sentence_vae"] = [
        f"{VAE_DIR}/results.csv",
        f"{VAE_FIGURES}/training.png",
        f"{VAE_FIGURES}/summary.png",
        f"{VAE_FIGURES}/latent.png",
        f"{VAE_FIGURES}/interpolations.png",
    ]
    STUDY_PANELS += [
        (
            "sentence_vae/training",
            "Sentence VAE: posterior collapse",
            "Reconstruction NLL and KL (nats per sentence) of a frozen GPT with adapters "
            "as a VAE, for each KL schedule; bands: one standard deviation over seeds.",
        ),
        (
            "sentence_vae/summary",
            "Sentence VAE: is sentiment linear in z?",
            "Per KL schedule, after training: the latent units in use, a linear probe's "
            "sentiment accuracy from the test sentences' μ against the majority class, and "
            "the share of sentences that, moved along the sentiment direction in z and "
            "decoded, the probe reads as flipped.",
        ),
        (
            "sentence_vae/latent",
            "Sentence VAE: the latent space",
            "Test sentences' posterior means, projected on their first two principal "
            "components and coloured by the review's label; the linear probe's accuracy above.",
        ),
        (
            "sentence_vae/interpolations",
            "Sentence VAE: interpolations",
            "Greedy decodes along the line between two sentences' latent codes, and "
            "sentences of each label moved along the sentiment direction in z, each beside "
            "its decoding unmoved.",
        ),
    ]
