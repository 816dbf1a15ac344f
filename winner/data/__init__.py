"""Data in: CoNLL text and Hugging Face datasets to sentences, vocabularies, word windows, pretrained vectors.

Imports only winner.core (for atomic writes and the console), never winner.heads or winner.cli.
"""
