"""Function transforms built on the tape: grad and friends, forward mode, custom VJPs,
recomputation (`tg.checkpoint`), gradcheck and per-op blame.

This package re-exports nothing (`tapegrad` does), so every module here is reached by its own name.
"""
