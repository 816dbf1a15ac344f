"""The three heads on the core: the softmax NER tagger, the max-margin window scorer, the neural LM.

Each builds its model from settings and data, trains through winner.core.loop and saves as npz + json.
Nothing here imports winner.cli.
"""
