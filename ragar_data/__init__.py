"""ragar-data: RA-GAR gait datasets from multi-view walking videos, and gait attribute recognition models."""

__version__ = "0.1.0"
