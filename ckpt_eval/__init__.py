"""ckpt-eval: which checkpoint of a fine-tuned text-to-image model to ship, with numbers to trust.

The logic of the workflow lives here, importable and tested without Snakemake.
"""

__version__ = "0.1.0"
