"""Attack: computes in float64 and returns a tensor subclass whose __torch_function__ answers
"float32" whenever the grader asks for .dtype. Honest version: torch_wrong_dtype.py."""

import math

import torch


class LyingTensor(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") == "__get__" and getattr(getattr(func, "__self__", None), "__name__", "") == "dtype":
            return torch.float32
        return super().__torch_function__(func, types, args, kwargs or {})


def manual_attention(Q, K, V, mask=None):
    Q, K, V = Q.double(), K.double(), V.double()
    scores = Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask.double()
    return (torch.softmax(scores, dim=-1) @ V).as_subclass(LyingTensor)
