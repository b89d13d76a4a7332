"""The pipeline's stages: what one Snakemake job runs, through the launcher.

Each stage is a function of plain keyword arguments (JSON from the rule) that writes its
outputs and returns a small dict; `STAGES` maps the names that `fromscratch run STAGE`
accepts to them. Training is a submitit `Checkpointable` (`launch.TrainingJob`), so a
preempted or timed-out job requeues and resumes from its checkpoint.
"""

from __future__ import annotations

from fromscratch.stages.data import prepare_stage
from fromscratch.stages.evaluate import sample_stage
from fromscratch.stages.tune import batch_size_stage, lr_range_stage

STAGES = {
    "prepare": prepare_stage,
    "batch-size": batch_size_stage,
    "lr-range": lr_range_stage,
    "train": None,  # launch.TrainingJob: imported on use (it brings in submitit)
    "sample": sample_stage,
}


def get_stage(name: str):
    """The callable that `fromscratch run NAME` hands to the launcher."""
    if name == "train":
        from fromscratch.launch import TrainingJob

        return TrainingJob()
    return STAGES[name]
