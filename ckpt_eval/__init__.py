"""ckpt-eval: pick the checkpoint of a fine-tuned text-to-image model to ship, with numbers to trust."""

__version__ = "0.1.0"
