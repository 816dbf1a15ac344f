"""The NER tagger's training settings, kept free of heavy imports so the CLI can read its defaults fast."""

from __future__ import annotations

from dataclasses import dataclass

from winner.data.embeddings import DEFAULT_EMBEDDINGS


@dataclass
class NERSettings:
    """Everything `winner ner train` takes; the defaults are the settings tuned on CoNLL-2003 valid."""

    out: str = "runs/ner"
    train: str | None = None  # path or hub name; None = the shipped WikiGold
    dev: str | None = None
    embeddings: str = DEFAULT_EMBEDDINGS  # path, gensim-downloader name, "default" or "none"
    trust_pickle: bool = False  # allow gensim native (pickle) embeddings files: runs code in them
    window: int = 2
    hidden: int = 300
    layers: int = 1
    activation: str = "tanh"
    casing_dim: int = 10
    random_embed_dim: int = 50  # only with --embeddings none
    max_pretrained: int = 0  # most frequent pretrained words added to the vocabulary (0: all)
    unk_replace: float = 0.5  # chance a rare training word without a vector is shown as <unk>
    epochs: int = 30
    patience: int = 5
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float = 1e-3
    embed_lr_scale: float = 1.0
    dropout: float = 0.5  # on the input embeddings
    hidden_dropout: float = 0.0
    l2: float = 0.0
    l1: float = 0.0
    scheme: str = "iobes"
    decode: str = "viterbi"
    seed: int = 0
    resume: bool = False
    quiet: bool = False
