"""The metrics, numpy only, each one module declared once in `ckpt_eval.metrics.registry`."""
