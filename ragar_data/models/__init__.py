"""Gait attribute recognition models: CLIP-GAR, its visual encoder (DeepGaitV2-3D-like) and text encoders."""
