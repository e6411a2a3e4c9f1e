# mistakes: none
# style: public
# Held-out: correct code in the style of BERT's self-attention (transpose_for_scores helper).
import math

import torch


def multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None):
    head_size = x.shape[-1] // n_heads

    def transpose_for_scores(t):
        new_shape = t.size()[:-1] + (n_heads, head_size)
        return t.view(new_shape).permute(0, 2, 1, 3)

    query_layer = transpose_for_scores(torch.matmul(x, W_Q))
    key_layer = transpose_for_scores(torch.matmul(x, W_K))
    value_layer = transpose_for_scores(torch.matmul(x, W_V))
    attention_scores = torch.matmul(query_layer, key_layer.transpose(-1, -2))
    attention_scores = attention_scores / math.sqrt(head_size)
    if mask is not None:
        attention_scores = attention_scores + mask
    attention_probs = torch.nn.functional.softmax(attention_scores, dim=-1)
    context_layer = torch.matmul(attention_probs, value_layer)
    context_layer = context_layer.permute(0, 2, 1, 3).contiguous()
    context_layer = context_layer.view(context_layer.size()[:-2] + (n_heads * head_size,))
    return context_layer @ W_O
