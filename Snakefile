# fromscratch: from raw data to poster, one DAG.
#   snakemake --cores 2            the demo preset, here
#   snakemake --profile slurm      on the cluster, every job through submitit (README)
#   snakemake --config preset=small


# config.yaml (and a --configfile) read first by the project's own YAML reader, where it is
# installed: Snakemake's keeps the second of a key written twice without a word (a preset's
# first `train:` block gone), and names neither file nor line of a syntax error.
try:
    from fromscratch import FromScratchError
    from fromscratch.io import parse_yaml
except ImportError:  # Snakemake without the package (--sdm conda): its reading alone
    parse_yaml = None
for config_file in (
    ["config.yaml", *workflow.overwrite_configfiles] if parse_yaml else []
):
    try:
        with open(config_file, encoding="utf-8") as f:
            parse_yaml(f.read(), str(config_file))
    except FileNotFoundError:  # config.yaml where --configfile replaces it
        pass
    except FromScratchError as error:
        raise SystemExit(f"config: {error}")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/tune.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
# The research studies come before the figures: their panels join the poster.
include: "workflow/rules/ablations/augmentation.smk"
include: "workflow/rules/ablations/recurrent_gpt2.smk"
include: "workflow/rules/ablations/distillation.smk"
include: "workflow/rules/ablations/perceiver.smk"
include: "workflow/rules/ablations/cramming.smk"
include: "workflow/rules/ablations/sentence_vae.smk"
include: "workflow/rules/ablations/encoder_decoder.smk"
include: "workflow/rules/figures.smk"


# One study alone, with the course runs it builds on: `snakemake --cores 2 distillation`.
for study_name, targets in STUDY_TARGETS.items():

    rule:
        name:
            study_name
        input:
            targets,
        localrule: True


check_fromscratch_on_path()
check_cluster_entries()


onstart:
    check_jobs_to_run()


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        all_targets(),
