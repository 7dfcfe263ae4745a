"""Per checkpoint (all metrics from cached features) and across checkpoints (bootstrap,
significance, ranking, the recommendation as facts)."""
