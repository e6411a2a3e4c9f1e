"""The catalogue of realistic learner mistakes, each runnable on NumPy and PyTorch.

A misconception is either *numeric* (an implementation whose outputs we can compare with the
learner's on the same inputs: a knob setting of `reference.variants`) or *structural* (wrong
dtype, in-place edits, autograd broken: recognised by which property failed). Every one has an
implementation, so `attnspec spec check` can prove the spec catches it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .reference import variants
from .reference.variants import is_torch

COURSE = {
    "formula": "The attention mechanism, section 'The Attention Formula': softmax(Q K^T / sqrt(d_k)) V, softmax over the last axis (dim=-1)",
    "scale_why": "The attention mechanism, exercise: why divide by sqrt(d_k)? (variance of Q.K for unit-variance Q, K)",
    "masking": "The attention mechanism, section 'Causal Masking': the mask is added to the scores before the softmax (0 = keep, -inf = blocked)",
    "masking_002": "Attention, section 'Masking': upper-triangle entries set to -inf before the softmax",
    "mha": "The attention mechanism, section 'Multi-Head Attention': view(batch, seq, n_heads, d_head).transpose(1, 2), then back and W_O",
    "mha_block": "Attention inside the block: heads read slices of the width, concat, then one W_O; the edit is added by the residual",
    "block": "contracts (docs/contracts.md) and 'Multi-headed self-attention blocks': pre-norm block, LayerNorm -> attention -> add, LayerNorm -> MLP -> add",
    "ln": "exercises.md: LayerNorm with the biased variance and eps = 1e-5 inside the square root (as torch.nn.LayerNorm)",
    "gelu": "exercises.md: GELU is the exact erf form (torch.nn.functional.gelu, approximate='none')",
    "contract": "exercises.md: outputs keep the inputs' array type and dtype and never modify the inputs",
    "autograd": "The attention mechanism uses torch operations end to end, so autograd can compute gradients",
}

STRUCTURAL_PROPERTIES = ("output_dtype", "output_array_type", "inputs_unchanged", "gradients_match")


@dataclass(frozen=True)
class Misconception:
    id: str
    exercise: str
    title: str
    feedback: str
    reference: str
    knobs: dict[str, Any] | None = None  # numeric: a variants knob setting
    function: str | None = None  # the contract function it replaces (default: the exercise's)
    wrapper: Callable[..., Any] | None = None  # structural: implementation built from the reference
    signature: tuple[str, str] | None = None  # structural: (failed property, failure kind) read from the structured failure
    rule: str | None = None  # diagnosed by a named rule on the failing inputs (see diagnosis.RULES)
    backends: tuple[str, ...] = ("numpy", "torch")
    listed: bool = True  # False for entries derived from a lower exercise (diagnosis only)
    grid: tuple[dict[str, Any], ...] = ()  # numeric families with a parameter: the knob settings tried when fitting
    kind: str = "mistake"  # mistake | hint (vocabulary only: advice a property gives, never diagnosed by itself)

    @property
    def family(self) -> str | None:
        """The knob this mistake sets ('scale', 'attention.mask_mode', ...): one value per family in a combination."""
        if self.knobs is None or self.function is not None:
            return None
        path, knobs = [], self.knobs
        while len(knobs) == 1 and isinstance(next(iter(knobs.values())), dict):
            key = next(iter(knobs))
            path.append(key)
            knobs = knobs[key]
        return ".".join(path + [next(iter(knobs))])

    def settings(self) -> tuple[dict[str, Any], ...]:
        """Every knob setting to fit (one, or the parameter grid)."""
        return self.grid or ((self.knobs or {}),)

    @property
    def by_output(self) -> bool:
        """Diagnosed by reproducing the learner's outputs (rather than by a failure signature or rule)."""
        return self.signature is None and self.rule is None and self.kind == "mistake" and self.knobs is not None and self.function is None

    @property
    def target(self) -> str:
        return self.function or self.exercise

    def implementation(self) -> Callable[..., Any]:
        """A callable for `target` with this mistake (works on NumPy arrays and torch tensors)."""
        if self.function == "causal_mask":
            knobs = dict(self.knobs or {})
            return lambda n: variants.causal_mask(n, **knobs)
        if self.wrapper is not None:
            return self.wrapper
        return _variant(self.exercise, self.knobs or {})


def _variant(exercise: str, knobs: dict[str, Any]) -> Callable[..., Any]:
    fn = {"manual_attention": variants.attention, "multi_head_attention": variants.multi_head_attention, "transformer_block": variants.transformer_block}[exercise]

    def run(*args: Any) -> Any:
        return fn(*args, **knobs)

    return run


# ---------------------------------------------------------------- structural implementations


def _reference(exercise: str) -> Callable[..., Any]:
    return _variant(exercise, {})


def _wrong_dtype(exercise: str) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        out = _reference(exercise)(*args)
        return out.double() if is_torch(out) else out.astype(np.float64)

    return run


def _wrong_array_type(exercise: str) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        out = _reference(exercise)(*args)
        return out.detach().cpu().numpy() if is_torch(out) else out.tolist()

    return run


def _modifies_inputs(exercise: str) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        out = _reference(exercise)(*args)
        first = args[0]
        if is_torch(first):
            first.mul_(2.0)
        else:
            first *= 2.0
        return out

    return run


def _numpy_roundtrip(exercise: str) -> Callable[..., Any]:
    """PyTorch code that converts to NumPy and back: right values, no gradient."""
    from .reference import numpy_ref

    def to_np(a: Any) -> Any:
        if isinstance(a, dict):
            return {k: to_np(v) for k, v in a.items()}
        return a.detach().cpu().numpy() if is_torch(a) else a

    def run(*args: Any) -> Any:
        import torch

        out = getattr(numpy_ref, exercise)(*[to_np(a) for a in args])
        return torch.tensor(out, dtype=args[0].dtype)

    return run


def _data_write(*args: Any) -> Any:
    """Scales the scores through .data, which autograd does not see: right values, wrong gradients."""
    import torch

    Q, K, V, mask = args
    scores = Q @ K.transpose(-2, -1)
    scores.data = scores.data / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    return torch.softmax(scores, dim=-1) @ V


# ---------------------------------------------------------------- the catalogue


def _numeric(exercise: str, key: str, title: str, feedback: str, reference: str, **knobs: Any) -> Misconception:
    return Misconception(f"{_PREFIX[exercise]}.{key}", exercise, title, feedback, COURSE[reference], knobs=knobs)


_PREFIX = {"manual_attention": "ma", "multi_head_attention": "mha", "transformer_block": "block"}
MA, MHA, BLOCK = "manual_attention", "multi_head_attention", "transformer_block"

_MA = [
    _numeric(MA, "no_scaling", "no scaling of the scores",
             "The scores Q K^T are not divided by sqrt(d_head). Without it the softmax saturates as d_head grows; divide before the softmax.", "scale_why", scale="none"),
    _numeric(MA, "scale_d_head", "scores divided by d_head instead of sqrt(d_head)",
             "The scores are divided by d_head; the formula divides by its square root, sqrt(d_head).", "formula", scale="d_head"),
    _numeric(MA, "scale_sqrt_d_model", "scores divided by sqrt(d_model) instead of sqrt(d_head)",
             "The scale uses the model width (n_heads * d_head); each head scales by the size of its own slice, sqrt(d_head) = sqrt(Q.shape[-1]).", "formula", scale="sqrt_d_model"),
    _numeric(MA, "scale_sqrt_d_v", "scores divided by sqrt(d_v) instead of sqrt(d_head)",
             "The scale uses the width of V (d_v = V.shape[-1]); it is the width of the queries and keys, sqrt(d_head) = sqrt(Q.shape[-1]).", "formula", scale="sqrt_d_v"),
    _numeric(MA, "scale_multiplied", "scores multiplied by sqrt(d_head) instead of divided",
             "The scores are multiplied by sqrt(d_head); they must be divided by it.", "formula", scale="mul_sqrt_d_head"),
    Misconception("ma.scale_other", MA, "scores scaled by another factor",
                  "The scores are scaled by a factor other than 1/sqrt(d_head) (the fitted factor, relative to the correct one, is in the evidence). Divide Q K^T by sqrt(Q.shape[-1]).",
                  COURSE["formula"], knobs={"scale": 0.5}, listed=False),
    _numeric(MA, "scale_after_softmax", "scaling applied after the softmax",
             "The division by sqrt(d_head) happens after the softmax (so the weights no longer sum to 1); scale the scores before the softmax.", "formula", scale="after_softmax"),
    _numeric(MA, "softmax_query_axis", "softmax over the query axis",
             "The softmax normalises over the queries (axis -2) instead of the keys (axis -1): each output row must be a weighted average of V with weights summing to 1 over the keys.", "formula", softmax_axis="queries"),
    _numeric(MA, "softmax_head_axis", "softmax over the head axis",
             "The softmax normalises over axis 1 of the (batch, n_heads, seq_q, seq_k) scores, the heads (dim=1); it must run over the keys, the last axis (dim=-1).", "formula", softmax_axis="heads"),
    _numeric(MA, "k_q_transposed", "K Q^T instead of Q K^T",
             "The scores are computed as K @ Q^T, which is the transposed score matrix (and only has the right shape when seq_q == seq_k). Use Q @ K^T: rows are queries, columns keys.", "formula", scores="KQ"),
    _numeric(MA, "mask_ignored", "mask ignored",
             "The mask argument never reaches the scores, so blocked positions (and biases) have no effect. Add it to the scaled scores before the softmax.", "masking", mask_mode="ignore"),
    _numeric(MA, "mask_subtracted", "mask subtracted instead of added",
             "The mask is subtracted; it is additive: scores + mask, so -inf entries block and finite entries are biases.", "masking", mask_mode="subtract"),
    Misconception("ma.mask_keep01", MA, "mask read as a 0/1 keep-mask",
                  "The mask is treated as 1 = keep / 0 = blocked (masked_fill(mask == 0, -inf)). Here it is additive: 0 means keep, -inf means blocked, other values are biases.",
                  COURSE["masking"], knobs={"mask_mode": "keep01"}, grid=({"mask_mode": "keep01"}, {"mask_mode": "keep01", "mask_fill": -1e9})),
    _numeric(MA, "mask_after_softmax", "mask applied after the softmax",
             "Blocked weights are zeroed after the softmax, so the rows no longer sum to 1 and finite biases are lost. Add the mask to the scores before the softmax.", "masking_002", mask_mode="after_softmax"),
    _numeric(MA, "mask_neginf_only", "only the -inf entries of the mask are honoured",
             "Only the -inf entries of the mask are used (e.g. masked_fill(isneginf(mask), -inf) or mask == -inf); finite entries are biases and must be added to the scores too: scores + mask.", "masking", mask_mode="neginf_only"),
    _numeric(MA, "mask_scaled", "mask scaled together with the scores",
             "The mask is added before the division by sqrt(d_head), so finite biases are scaled too: (Q K^T + mask) / sqrt(d). Add it after scaling: Q K^T / sqrt(d) + mask.", "masking", mask_mode="scaled"),
    _numeric(MA, "mask_own_causal", "the given mask replaced by a causal mask",
             "The function builds its own causal mask (triu) instead of using the mask it is given, so padding, block and bias masks have no effect. Add the mask argument to the scores.", "masking", mask_mode="own_causal"),
    Misconception("ma.mask_own_causal_blocks_diagonal", MA, "the given mask replaced by a causal mask that also blocks the diagonal",
                  "The function builds its own mask with triu(diagonal=0) instead of using the mask it is given: position i cannot see itself (row 0 is all blocked: NaN) and the given mask is ignored. Use the mask argument.",
                  COURSE["masking"], knobs={"mask_mode": "own_causal", "causal_diagonal": 0}),
    _numeric(MA, "always_causal", "attention is always causal",
             "A causal mask is applied whatever mask is passed, even with mask=None. Apply exactly the mask you are given.", "masking", mask_mode="always_causal"),
    Misconception("ma.causal_mask_blocks_diagonal", MA, "causal mask blocks the diagonal",
                  "causal_mask also blocks position i from seeing itself (triu with k=0); position i must see 0..i, so use k=1.", COURSE["masking"], knobs={"diagonal": 0}, function="causal_mask"),
    Misconception("ma.causal_mask_sees_next", MA, "causal mask lets each position see the next one",
                  "causal_mask leaves one future position open (triu with k=2); position i must not see i+1.", COURSE["masking"], knobs={"diagonal": 2}, function="causal_mask"),
    Misconception("ma.causal_mask_keep01", MA, "causal mask returned as 0/1",
                  "causal_mask returns a 0/1 lower-triangular matrix; the contract's mask is additive: 0 where allowed, -inf above the diagonal.", COURSE["masking"], knobs={"keep01": True}, function="causal_mask"),
    _numeric(MA, "mask_4d_broadcast", "a 4-D mask broadcast wrongly",
             "With a (batch, n_heads, seq_q, seq_k) mask, one slice is used for every batch element and head. Add the whole 4-D mask to the 4-D scores; it broadcasts element for element.", "masking", mask_4d="first"),
    _numeric(MA, "unstable_softmax", "softmax without subtracting the row maximum",
             "exp(scores) overflows to inf for large scores (inf/inf = NaN). Subtract each row's maximum before exp; the softmax is unchanged by the shift.", "formula", stable=False),
    _numeric(MA, "returns_pattern", "returns the attention pattern instead of the output",
             "The function returns softmax(...) (the attention weights); the exercise returns the weighted sum of the values, pattern @ V.", "formula", returns="pattern"),
    Misconception("ma.square_only", MA, "only works when seq_q == seq_k",
                  "The code uses the query length where the key length belongs (e.g. slicing K or V, or building a mask, with Q.shape[2]); K and V may be longer or shorter than Q.",
                  COURSE["formula"], knobs={"seq": "square_only"}, rule="square_only"),
]

_MHA = [
    _numeric(MHA, "split_no_transpose", "heads split with reshape/view and no transpose",
             "x @ W is reshaped straight to (batch, n_heads, seq, d_head), which mixes tokens and heads. Reshape to (batch, seq, n_heads, d_head), then transpose to (batch, n_heads, seq, d_head).", "mha", split="no_transpose"),
    _numeric(MHA, "heads_interleaved", "heads take interleaved columns",
             "Head h takes columns h, h + n_heads, ... ; it must take the contiguous slice h*d_head:(h+1)*d_head (reshape to (..., n_heads, d_head), not (..., d_head, n_heads)).", "mha", split="interleaved"),
    _numeric(MHA, "heads_reversed", "heads concatenated in the wrong order",
             "The heads are concatenated in reverse order; head h must land in columns h*d_head:(h+1)*d_head before W_O.", "mha_block", merge="reversed"),
    _numeric(MHA, "heads_summed", "heads summed instead of concatenated",
             "The head outputs are added together; they must be concatenated (back to width d_model) and then mixed by W_O.", "mha_block", merge="sum"),
    _numeric(MHA, "no_w_o", "W_O forgotten",
             "The concatenated heads are returned without the output projection W_O.", "mha_block", w_o=False),
    _numeric(MHA, "weights_transposed", "weights applied as x @ W.T",
             "The projections are applied as x @ W.T (the nn.Linear convention); this exercise applies them as x @ W.", "mha", weights="x@W.T"),
    _numeric(MHA, "scale_sqrt_d_model", "heads scaled by sqrt(d_model)",
             "Each head's scores are divided by sqrt(d_model); they must be divided by sqrt(d_head) = sqrt(d_model / n_heads).", "mha", attention={"scale": "sqrt_d_model"}),
    _numeric(MHA, "residual_inside", "residual added inside the sublayer",
             "The function returns x + edit; it must return only the edit (the block adds it to the residual stream).", "mha_block", residual=True),
]

_BLOCK = [
    _numeric(BLOCK, "post_norm", "post-norm instead of pre-norm",
             "LayerNorm is applied after each residual add (x = LN(x + sublayer(x))); this block is pre-norm: x + sublayer(LN(x)).", "block", norm="post"),
    _numeric(BLOCK, "no_mlp_residual", "residual missing on the MLP",
             "The MLP's output is returned without adding it to a: out = a + MLP(LN(a)).", "block", mlp_residual=False),
    _numeric(BLOCK, "unbiased_variance", "LayerNorm with the unbiased variance",
             "The variance divides by d_model - 1 (np.var(ddof=1) / torch.var default); LayerNorm uses the biased variance (ddof=0, unbiased=False).", "ln", variance="unbiased"),
    _numeric(BLOCK, "eps_outside_sqrt", "LayerNorm eps outside the square root",
             "eps is added after the square root, (x - mean) / (sqrt(var) + eps); it belongs inside: sqrt(var + eps).", "ln", eps="outside"),
    Misconception("block.ln_eps", BLOCK, "LayerNorm with another eps",
                  "LayerNorm uses an eps other than 1e-5 (the fitted value is in the evidence); use eps = 1e-5 inside the square root, as torch.nn.LayerNorm.",
                  COURSE["ln"], knobs={"eps_value": 1e-6}, grid=tuple({"eps_value": e} for e in (0.0, 1e-12, 1e-8, 1e-6, 1e-4, 1e-3))),
    _numeric(BLOCK, "ln_no_affine", "LayerNorm without its gain and bias",
             "LayerNorm does not apply ln_g and ln_b (the learned scale and shift): multiply by g and add b after normalising.", "ln", ln_affine=False),
    _numeric(BLOCK, "mlp_no_bias", "MLP biases dropped",
             "The MLP never adds b_in and b_out: h = GELU(x @ W_in + b_in) @ W_out + b_out.", "block", mlp_bias=False),
    _numeric(BLOCK, "no_attn_residual", "residual missing on the attention",
             "The attention edit is not added to x: a = x + attention(LN(x)).", "block", attn_residual=False),
    _numeric(BLOCK, "gelu_sigmoid", "sigmoid-approximate GELU",
             "GELU uses the sigmoid approximation x * sigmoid(1.702 x); the exercise uses the exact form 0.5 * x * (1 + erf(x / sqrt(2))).", "gelu", activation="gelu_sigmoid"),
    _numeric(BLOCK, "gelu_tanh", "tanh-approximate GELU",
             "GELU uses the tanh approximation; the exercise uses the exact form 0.5 * x * (1 + erf(x / sqrt(2))).", "gelu", activation="gelu_tanh"),
    _numeric(BLOCK, "relu", "ReLU instead of GELU",
             "The MLP uses ReLU; the block's activation is GELU (exact erf form).", "gelu", activation="relu"),
    _numeric(BLOCK, "ln2_on_input", "second LayerNorm applied to x instead of the attention output",
             "The MLP branch normalises the block input x; it must normalise a = x + attention edit.", "block", ln2_input="x"),
]


def _structural(exercise: str) -> list[Misconception]:
    p = _PREFIX[exercise]
    return [
        Misconception(f"{p}.batch_one_only", exercise, "only batch element 0 is computed (copied to every batch position)",
                      "Batch element 0 is used for everything (e.g. Q[0] or x[0]) and repeated; every batch element must be computed from its own inputs.",
                      COURSE["contract"], knobs={"batch": "first_broadcast"}),
        Misconception(f"{p}.batch_first_only", exercise, "only batch element 0 is computed (returned as a batch of 1)",
                      "The result has batch size 1: only element 0 is computed (e.g. Q[0:1], x[:1], or a loop that stops after the first element). Compute every batch element.",
                      COURSE["contract"], knobs={"batch": "first_only"}),
        Misconception(f"{p}.float32_internal", exercise, "computed in float32 for float64 inputs",
                      "Part of the computation (often the softmax or the LayerNorm) runs in float32 (.float(), np.float32, torch.float32) and is cast back, so float64 inputs lose precision. Compute in the inputs' dtype.",
                      COURSE["contract"], knobs={"precision": "float32"}, rule="float32_internal"),
        Misconception(f"{p}.modifies_inputs", exercise, "modifies its inputs",
                      "An argument is changed in place (Q /= ..., x += ..., add_()/masked_fill_()). Work on new arrays: the caller's inputs must stay as they were.",
                      COURSE["contract"], wrapper=_modifies_inputs(exercise), signature=("inputs_unchanged", "mutated")),
        Misconception(f"{p}.wrong_dtype", exercise, "returns the wrong dtype",
                      "The result's dtype differs from the inputs' (NumPy 2 turns float32 / np.sqrt(d) into float64). Scale with math.sqrt(d) or cast back to the input dtype.",
                      COURSE["contract"], wrapper=_wrong_dtype(exercise), signature=("output_dtype", "dtype")),
        Misconception(f"{p}.wrong_array_type", exercise, "returns the wrong array type",
                      "The result is not the inputs' array type (a list from .tolist(), or a NumPy array from torch code). Return a numpy.ndarray for NumPy inputs, a torch.Tensor for tensors.",
                      COURSE["contract"], wrapper=_wrong_array_type(exercise), signature=("output_array_type", "array_type")),
        Misconception(f"{p}.returns_tuple", exercise, "returns a tuple (e.g. output and weights)",
                      "The function returns a tuple, such as (output, weights); return only the output array.",
                      COURSE["contract"], wrapper=_returns_tuple(exercise), rule="returns_tuple"),
        Misconception(f"{p}.fails_without_mask", exercise, "fails when mask is None",
                      "The function raises when it is called without a mask (mask=None is the default): guard the mask step with `if mask is not None:`.",
                      COURSE["masking"], wrapper=_fails_without_mask(exercise), rule="fails_without_mask"),
        Misconception(f"{p}.numpy_roundtrip", exercise, "PyTorch code that leaves autograd (NumPy round trip)",
                      "The computation goes through .numpy() (or torch.tensor(values)), so the result has no gradient. Keep every step in torch operations.",
                      COURSE["autograd"], wrapper=_numpy_roundtrip(exercise), rule="no_graph_numpy", backends=("torch",)),
        Misconception(f"{p}.no_grad", exercise, "computed under torch.no_grad()",
                      "The computation runs inside torch.no_grad() (or inference_mode / a @torch.no_grad() decorator), so the result has no autograd graph and no gradient. Remove it: the grader and the training loop need the gradients.",
                      COURSE["autograd"], wrapper=_under_no_grad(exercise), rule="no_graph_no_grad", backends=("torch",)),
        Misconception(f"{p}.half_fill_overflow", exercise, "a -1e9 fill that float16 cannot represent",
                      "A blocked score is filled with -1e9 (masked_fill(..., -1e9)), which overflows float16 and raises. Fill with float('-inf') or torch.finfo(scores.dtype).min.",
                      COURSE["masking"], wrapper=_fill_minus_1e9(exercise), rule="half_fill_overflow", backends=("torch",)),
    ]


def _returns_tuple(exercise: str) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        out = _reference(exercise)(*args)
        return out, out

    return run


def _fails_without_mask(exercise: str) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        if args[-1] is None:
            raise TypeError("unsupported operand type(s) for +: 'Tensor' and 'NoneType'")
        return _reference(exercise)(*args)

    return run


def _under_no_grad(exercise: str) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        import torch

        with torch.no_grad():
            return _reference(exercise)(*args)

    return run


def _fill_minus_1e9(exercise: str) -> Callable[..., Any]:
    """Blocked scores set with masked_fill(-1e9) in the inputs' dtype: raises for float16."""

    def run(*args: Any) -> Any:
        mask = args[-1]
        if is_torch(args[0]) and mask is not None:
            import torch

            torch.zeros(1, dtype=args[0].dtype).masked_fill(torch.tensor([True]), -1e9)
        return _reference(exercise)(*args)

    return run


_HINTS = [
    Misconception("hint.missing_return", MA, "a missing return statement", "The function returned None: return the result.", COURSE["contract"], kind="hint", listed=False),
    Misconception("hint.mask_not_applied", MA, "the mask does not reach the scores",
                  "Outputs at earlier positions changed when later tokens changed: the causal mask is not added to the scores before the softmax (or is applied after it).", COURSE["masking"], kind="hint", listed=False),
    Misconception("hint.mixes_tokens", MA, "something depends on position or mixes tokens",
                  "Reordering the inputs did not reorder the output: e.g. a softmax over the query axis, or a reshape that mixes the sequence axis with heads.", COURSE["formula"], kind="hint", listed=False),
    Misconception("hint.mixes_batch", MA, "batch elements are mixed",
                  "A batch element gives a different result alone: code indexes batch element 0 (Q[0]) or mixes the batch axis into a reshape or sum.", COURSE["contract"], kind="hint", listed=False),
    Misconception("hint.mixes_heads", MA, "heads are mixed",
                  "A head gives a different result alone: a softmax or sum over the head axis, a 4-D mask applied to the wrong heads, or heads split/merged without the transpose.", COURSE["mha"], kind="hint", listed=False),
    Misconception("hint.autograd_gap", MA, "a step autograd cannot see",
                  "The forward values are right but a gradient is not: a step autograd cannot see (writing through .data, a .numpy() round trip, detach() in the middle).", COURSE["autograd"], kind="hint", listed=False),
    Misconception("hint.mask_blocks_past", MA, "causal_mask blocks the past",
                  "causal_mask blocks positions before i instead of after it: use the upper triangle (triu with k=1).", COURSE["masking"], kind="hint", listed=False),
    Misconception("hint.numpy_promotion", MA, "float32 promoted by a float64 NumPy scalar",
                  "NumPy 2 promotes a float32 array combined with a float64 NumPy scalar (such as np.sqrt(d)) to float64: divide by math.sqrt(d) or cast back.", COURSE["contract"], kind="hint", listed=False),
    Misconception("hint.half_not_cast_back", MA, "half precision not cast back",
                  "Part of the computation was done in float32/float64 and not cast back: return the inputs' dtype.", COURSE["contract"], kind="hint", listed=False),
    Misconception("hint.tolist", MA, "a Python list returned",
                  "A .tolist() or a Python list built in a loop was returned: return an array (np.stack / torch.stack the pieces).", COURSE["contract"], kind="hint", listed=False),
    Misconception("hint.torch_to_numpy", MA, "NumPy array returned from torch code",
                  "The tensors were converted to NumPy (.numpy()) and the NumPy result returned: stay in torch.", COURSE["contract"], kind="hint", listed=False),
    Misconception("hint.numpy_to_torch", MA, "torch tensor returned for NumPy inputs",
                  "The NumPy inputs were converted to torch: a NumPy submission should return a numpy.ndarray.", COURSE["contract"], kind="hint", listed=False),
    Misconception("hint.in_place", MA, "an in-place operation on an argument",
                  "An in-place operation on an argument, such as Q /= ..., scores += mask on a view of an input, x[...] = ..., or torch's add_()/masked_fill_().", COURSE["contract"], kind="hint", listed=False),
]


_EXTRA = [
    Misconception("ma.data_write", MA, "scaling written through .data",
                  "The scores are changed through .data (or inside torch.no_grad()), which autograd does not record: the values are right but the gradients are not.",
                  COURSE["autograd"], wrapper=_data_write, rule="gradients_only", backends=("torch",)),
]


def _lifted() -> list[Misconception]:
    """A lower exercise's numeric mistake seen through a higher one (their MHA calls their own attention)."""
    out = []
    for m in _MA:
        if m.function is None and m.knobs is not None and m.id not in ("ma.square_only", "ma.mask_4d_broadcast", "ma.scale_sqrt_d_model", "ma.scale_sqrt_d_v"):
            title = f"{m.title} (inside the attention heads)"
            out.append(Misconception(m.id.replace("ma.", "mha.attention.", 1), MHA, title, m.feedback, m.reference, knobs={"attention": m.knobs}, listed=False,
                                     grid=tuple({"attention": g} for g in m.grid)))
            out.append(Misconception(m.id.replace("ma.", "block.attention.", 1), BLOCK, title, m.feedback, m.reference, knobs={"mha": {"attention": m.knobs}}, listed=False,
                                     grid=tuple({"mha": {"attention": g}} for g in m.grid)))
    for m in _MHA:
        out.append(Misconception(m.id.replace("mha.", "block.mha.", 1), BLOCK, f"{m.title} (in the attention sublayer)", m.feedback, m.reference, knobs={"mha": m.knobs}, listed=False))
    return out


CATALOGUE: tuple[Misconception, ...] = tuple(_MA + _MHA + _BLOCK + [s for e in (MA, MHA, BLOCK) for s in _structural(e)] + _EXTRA + _lifted() + _HINTS)
BY_ID = {m.id: m for m in CATALOGUE}


def for_exercise(exercise: str, *, listed_only: bool = False) -> list[Misconception]:
    return [m for m in CATALOGUE if m.exercise == exercise and m.kind == "mistake" and (m.listed or not listed_only)]


def lifted_id(exercise: str, ma_id: str) -> str:
    """The id a manual_attention mistake has when seen through `exercise` (ma.x -> mha.attention.x)."""
    if exercise == MHA and ma_id.startswith("ma."):
        return "mha.attention." + ma_id[3:]
    if exercise == BLOCK and ma_id.startswith("ma."):
        return "block.attention." + ma_id[3:]
    if exercise == BLOCK and ma_id.startswith("mha."):
        return "block." + ma_id
    return ma_id


def namespace(m: Misconception) -> dict[str, Callable[..., Any]]:
    """The functions of a 'submission' that makes mistake `m` (the rest are correct)."""
    ns: dict[str, Callable[..., Any]] = {
        "manual_attention": _reference("manual_attention"),
        "multi_head_attention": _reference("multi_head_attention"),
        "transformer_block": _reference("transformer_block"),
        "causal_mask": lambda n: variants.causal_mask(n),
    }
    ns[m.target] = m.implementation()
    return ns
