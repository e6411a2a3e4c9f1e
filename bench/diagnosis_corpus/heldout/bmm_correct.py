# mistakes: none
# Held-out: correct code with batch and heads flattened for torch.bmm.
import torch


def manual_attention(Q, K, V, mask=None):
    B, H, Tq, D = Q.shape
    Tk, Dv = K.shape[2], V.shape[3]
    q = Q.reshape(B * H, Tq, D)
    k = K.reshape(B * H, Tk, D)
    v = V.reshape(B * H, Tk, Dv)
    s = torch.bmm(q, k.transpose(1, 2)) * D ** -0.5
    if mask is not None:
        s = s + torch.broadcast_to(mask, (B, H, Tq, Tk)).reshape(B * H, Tq, Tk)
    return torch.bmm(torch.softmax(s, dim=-1), v).reshape(B, H, Tq, Dv)
