"""The optional generate stage: plan (no torch) and render samples with diffusers + LoRA."""
