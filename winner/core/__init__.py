"""The numerical core: numba kernels with hand-written backprop, the window MLP, optimisers, the training loop.

Knows nothing of NER, scoring or language modelling: nothing here imports winner.data, winner.heads or
winner.cli. Call runtime.init() before the first kernel call of a process (every WindowMLP does).
"""
