"""Honest counterpart of the tampering fixtures: calls the forbidden
scaled_dot_product_attention through a name built at run time (so only the run-time check can
see it), and does nothing else. Fails the implementation-rules case only."""

import torch.nn.functional as F

NAME = "scaled_dot_" + "product_attention"


def manual_attention(Q, K, V, mask=None):
    return getattr(F, NAME)(Q, K, V, attn_mask=mask)
