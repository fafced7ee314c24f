"""torch's surface on `tg.Tensor`: the ops attached as methods and operators (`methods`), and
``torch.X(t)`` on tapegrad tensors running tapegrad's op of that name (`interop`).

This package re-exports nothing, so every module here is reached by its own name.
"""
