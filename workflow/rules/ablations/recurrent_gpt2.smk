# Research study "recurrent_gpt2": its own small DAG, on when config.ablations.recurrent_gpt2.enabled is true.
# Its rules are not part of the workflow yet; enabling it stops the run with that message.

if ablation_enabled("recurrent_gpt2"):
    raise ValueError(
        "config: ablations.recurrent_gpt2.enabled is true, but this study has no rules yet; "
        "set it to false"
    )
