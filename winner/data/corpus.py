"""Plain-text token streams for the language model: the shipped Brown corpus (Bengio et al. 2003 setup).

A stream is every token of a file in order, line breaks ignored: the LM reads one long sequence with
no sentence-boundary tokens (https://www.jmlr.org/papers/v3/bengio03a.html, section 4). Raw text (other
corpora, generation prompts) goes through `tokenize`, which mimics the Brown preparation so that a
prompt reads like the training text.
"""

from __future__ import annotations

import re
from collections.abc import Container
from pathlib import Path

from winner.data.conll import read_text
from winner.data.resources import BROWN_SPLITS, brown_stream_path
from winner.data.vocab import UNK, Vocab
from winner.errors import WinnerError

BROWN_MIN_COUNT = 4
HELD_OUT_FRACTION = 0.1  # of a single-file corpus's tokens, kept for validation


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


# ---------------------------------------------------------------- raw text like the Brown preparation

# One alternative per kind of token, tried in order: <markers>, quote pairs and dashes, words (with
# inner hyphens, apostrophes, periods, slashes, colons, digit groups; an optional $ before, % or a final
# period after), clitics standing alone, then any other single mark.
_TOKEN = re.compile(r"""
    <\w+>
  | ``|''|--+|\.\.\.
  | \$?\w+(?:(?:[-'./:&]|(?<=\d),(?=\d))\w+)*%?\.?
  | '(?:s|ll|re|ve|d|m|em)\b
  | [^\w\s]
""", re.VERBOSE)
_CLITIC = re.compile(r"(.+?)(n't|'s|'ll|'re|'ve|'d|'m)")
_INITIALISM = re.compile(r"[a-z](?:\.[a-z])*\.")  # a. u.s. p.m. i.e.
# Abbreviations the Brown text writes with their period (mr. st. fig. ...), beyond initialisms.
ABBREVIATIONS = frozenset("""
    mr. mrs. ms. dr. st. jr. sr. no. nos. co. corp. inc. ltd. fig. figs. etc. vs. gen. gov. sen. rep. rev.
    prof. capt. col. lt. sgt. mt. ft. ave. blvd. rd. dept. sec. vol. ch. pp. cf. ed. jan. feb. mar. apr. aug.
    sept. sept oct. nov. dec. calif. mass. fla. tex. ill. conn. mich. wash. ariz. okla. ore. kan. ala. va.
    pa. mo. la. md. ga. miss. messrs. drs. yrs. lb. lbs. in. sq. cm. mm. mg. gm. cc. hon. atty. bldg. dist.
""".split())


def _quotes(text: str) -> str:
    """Double quotes as Brown writes them: `` opening and '' closing."""
    text = text.replace("\u201c", "``").replace("\u201d", "''").replace("\u2018", "'").replace("\u2019", "'")
    return re.sub(r'(^|(?<=[\s(\[{]))"', "``", text).replace('"', "''")


def tokenize(text: str, known: Container[str] = frozenset()) -> list[str]:
    """Tokens of raw text as the Brown streams have them: lowercased, clitics split, punctuation split.

    `didn't` -> `did n't`, `can't` -> `ca n't`, `john's` -> `john 's`, `i'll` -> `i 'll`; a final period
    stays on initialisms (`u.s.`), common abbreviations (`mr.`) and any word+period in `known` (the model's
    vocabulary), otherwise it is a token of its own. Tokens already in Brown form come back unchanged.
    """
    out: list[str] = []
    for tok in _TOKEN.findall(_quotes(text.lower())):
        if tok[0].isalnum() or tok[0] == "$":
            word, period = (tok[:-1], ".") if tok.endswith(".") else (tok, "")
            if period and (tok in known or tok in ABBREVIATIONS or _INITIALISM.fullmatch(tok)):
                word, period = tok, ""
            m = _CLITIC.fullmatch(word)
            if m and word != "n't":
                out.extend(m.groups())
            else:
                out.append(word)
            if period:
                out.append(period)
        else:
            out.append(tok)
    return out


# ---------------------------------------------------------------- other corpora


def read_text_corpus(path: str | Path) -> dict[str, list[str]]:
    """Token streams of a plain-text corpus, tokenised with `tokenize`.

    PATH is a directory holding train* (required), valid* or dev* and test* files (plain or .gz), or
    one file whose last 10% of tokens are held out as the validation stream (no test stream).
    """
    path = Path(path)
    if path.is_file():
        tokens = tokenize(read_text(path))
        cut = len(tokens) - max(1, int(round(HELD_OUT_FRACTION * len(tokens))))
        if cut < 1:
            raise WinnerError(f"{path}: {len(tokens)} tokens are too few to hold out a validation part")
        return {"train": tokens[:cut], "valid": tokens[cut:]}
    if not path.is_dir():
        raise WinnerError(f"{path}: no such file or directory")
    streams: dict[str, list[str]] = {}
    for split, prefixes in (("train", ("train",)), ("valid", ("valid", "dev")), ("test", ("test",))):
        files = sorted(f for f in path.iterdir() if f.is_file() and f.name.startswith(prefixes))
        if len(files) > 1:
            raise WinnerError(f"{path}: more than one {split} file ({', '.join(f.name for f in files)})")
        if files:
            streams[split] = tokenize(read_text(files[0]))
    if "train" not in streams:
        raise WinnerError(f"{path}: no train* file in this directory")
    if "valid" not in streams:
        raise WinnerError(f"{path}: no valid* or dev* file in this directory")
    for split, stream in streams.items():
        if not stream:
            raise WinnerError(f"{path}: the {split} file has no tokens")
    return streams


def text_vocab(train: list[str], min_count: int = 1, max_size: int | None = None) -> Vocab:
    """`<unk>` plus the training tokens seen at least min_count times, at most max_size entries in all."""
    if max_size is not None and max_size < 2:
        raise WinnerError(f"--max-vocab must leave room for <unk> and one word, got {max_size}")
    return Vocab.build(train, specials=(UNK,), min_count=min_count, max_size=max_size)
