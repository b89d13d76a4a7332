# Research study "sentence_vae": its own small DAG, on when config.ablations.sentence_vae.enabled is true.
# Its rules are not part of the workflow yet; enabling it stops the run with that message.

if ablation_enabled("sentence_vae"):
    raise ValueError(
        "config: ablations.sentence_vae.enabled is true, but this study has no rules yet; "
        "set it to false"
    )
