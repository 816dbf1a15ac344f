"""winner: window-based neural NLP from first principles.

One numba-compiled MLP core with hand-written backprop (into the word embeddings too) and three
heads on it: a softmax NER tagger, a max-margin window scorer and a fixed-window neural language model.
"""

__version__ = "0.1.0"
