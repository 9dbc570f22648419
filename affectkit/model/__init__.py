"""AffectVLM and what a trained one is made of: the network, its training objective, prompts,
checkpoints and their inference config."""
