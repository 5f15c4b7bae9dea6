"""Synthetic RA-GAR: articulated walkers rendered by fixed cameras, with exact ground truth."""
