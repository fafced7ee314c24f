"""The engine: `tg.Tensor`, the per-thread state, the primitive registry, the tape and its reverse walk.

Nothing here imports from the layers above it (ops, transforms, tracing, cli); those build on it.
This package re-exports nothing, so every module here is reached by its own name.
"""
