"""Plain-text token streams for the language model: the shipped Brown corpus (Bengio et al. 2003 setup).

A stream is every token of a file in order, line breaks ignored: the LM reads one long sequence with
no sentence-boundary tokens (https://www.jmlr.org/papers/v3/bengio03a.html, section 4).
"""

from __future__ import annotations

from pathlib import Path

from winner.conll import read_text
from winner.resources import BROWN_SPLITS, brown_stream_path
from winner.vocab import UNK, Vocab

BROWN_MIN_COUNT = 4


def read_token_stream(path: str | Path) -> list[str]:
    """All whitespace-separated tokens of a UTF-8 file (plain or gzip), as one stream."""
    return read_text(path).split()


def brown_streams() -> dict[str, list[str]]:
    """The shipped Brown streams: train 800,000, valid 200,000 and test 171,652 tokens."""
    return {split: read_token_stream(brown_stream_path(split)) for split in BROWN_SPLITS}


def brown_vocab(streams: dict[str, list[str]]) -> Vocab:
    """`<unk>` plus every token seen at least 4 times over all splits: |V| = 16,493.

    Counting over all splits follows the paper's apparent convention (see data/README.md); 701 of
    these words never occur in train.
    """
    tokens = (t for stream in streams.values() for t in stream)
    return Vocab.build(tokens, specials=(UNK,), min_count=BROWN_MIN_COUNT)


def brown_sentences(split: str = "train") -> list[list[str]]:
    """The lines of a Brown stream as token lists (one sentence per line), e.g. for word2vec."""
    lines = read_text(brown_stream_path(split)).split("\n")
    return [tokens for tokens in (line.split() for line in lines) if tokens]
