"""Identity recognition (the paper's Table 7): protocol, P x K sampler, losses, retrieval metrics, training.

Not to be confused with `ragar_data.identity`, which owns sequence keys. The backbones are the attribute
baselines' (`ragar_data.models`); this package adds OpenGait's identity heads and losses on top.
"""
