# Research study "encoder_decoder": its own small DAG, on when config.ablations.encoder_decoder.enabled is true.
# Its rules are not part of the workflow yet; enabling it stops the run with that message.

if ablation_enabled("encoder_decoder"):
    raise ValueError(
        "config: ablations.encoder_decoder.enabled is true, but this study has no rules yet; "
        "set it to false"
    )
