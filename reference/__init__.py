"""Reference implementations of the attention exercises (`numpy_ref`, and `torch_ref` when torch is installed).

Import the backend module you need; `attnspec.reference.torch_ref` imports torch, `numpy_ref` never does.
"""
