"""`tg.trace`: a step's tape recorded once as a torch.fx graph, and the executors that run it (the graph's code,
inductor, CUDA graphs, the optimizer folded in). It re-exports nothing (`tapegrad` does): import each module."""
