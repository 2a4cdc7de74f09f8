"""Training SAPNet: the official recipe, paired data or synthetic rain, checkpoints in the toolkit's
format. See ``training/README.md`` and the ``sapnet-train`` command (:mod:`training.cli`)."""
