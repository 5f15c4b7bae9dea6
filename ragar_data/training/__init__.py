"""Training and evaluation of CLIP-GAR and baselines from shards."""
