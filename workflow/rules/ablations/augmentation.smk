# Research study "augmentation": its own small DAG, on when config.ablations.augmentation.enabled is true.
# Its rules are not part of the workflow yet; enabling it stops the run with that message.

if ablation_enabled("augmentation"):
    raise ValueError(
        "config: ablations.augmentation.enabled is true, but this study has no rules yet; "
        "set it to false"
    )
