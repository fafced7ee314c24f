"""`tg.trace`: a step's tape recorded once as a torch.fx graph, and the executors that run it
(the fx graph's code, inductor, CUDA graphs, the optimizer folded into the step).

This package re-exports nothing (`tapegrad` does), so every module here is reached by its own name.
"""
