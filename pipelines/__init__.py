"""Extraction stages (decode, detect, track, select, segment, normalise, pose2d, lift3d, quality, write),
their backends and presets. One module per stage; `backends/` holds the model backends of the paper's stack."""
