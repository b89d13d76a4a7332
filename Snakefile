# fromscratch: from raw data to poster, one DAG.
#   snakemake --cores 2            the demo preset, here
#   snakemake --profile slurm      on the cluster, every job through submitit (README)
#   snakemake --config preset=small


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
check_comparisons()


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        all_targets(),
