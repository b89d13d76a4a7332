"""The pipeline's stages: what one Snakemake job runs, through the launcher.

Each stage is a function of plain keyword arguments (JSON from the rule) that writes its
outputs and returns a small dict; `STAGES` maps the names that `fromscratch run STAGE`
accepts to them. Training, and every stage with a `resume` argument, is a submitit
`Checkpointable` (`launch.TrainingJob`, `launch.ResumableStage`), so a preempted or
timed-out job requeues and resumes from its checkpoint.
"""

from __future__ import annotations

import inspect

from fromscratch.stages.augmentation import augment_stage
from fromscratch.stages.data import prepare_stage
from fromscratch.stages.distillation import distillation_stage
from fromscratch.stages.encoder_decoder import encoder_decoder_stage
from fromscratch.stages.evaluate import evaluate_stage, sample_stage
from fromscratch.stages.perceiver import perceiver_cost_stage, perceiver_plan_stage
from fromscratch.stages.recurrent_gpt2 import recurrent_gpt2_stage
from fromscratch.stages.sentence_vae import sentence_vae_stage
from fromscratch.stages.tune import batch_size_stage, lr_range_stage, noise_scale_stage

STAGES = {
    "prepare": prepare_stage,
    "batch-size": batch_size_stage,
    "noise-scale": noise_scale_stage,
    "lr-range": lr_range_stage,
    "train": None,  # launch.TrainingJob: imported on use (it brings in submitit)
    "evaluate": evaluate_stage,
    "sample": sample_stage,
    # the research studies' own stages (their training runs use "train")
    "augment": augment_stage,
    "recurrent-gpt2": recurrent_gpt2_stage,
    "distillation": distillation_stage,
    "perceiver-plan": perceiver_plan_stage,
    "perceiver-cost": perceiver_cost_stage,
    "sentence-vae": sentence_vae_stage,
    "encoder-decoder": encoder_decoder_stage,
}


def get_stage(name: str):
    """The callable that `fromscratch run NAME` hands to the launcher."""
    # the launcher brings in submitit: imported only for the stages that need it
    if name == "train":
        from fromscratch.launch import TrainingJob

        return TrainingJob()
    stage = STAGES[name]
    if "resume" in inspect.signature(stage).parameters:
        from fromscratch.launch import ResumableStage

        return ResumableStage(stage)
    return stage
