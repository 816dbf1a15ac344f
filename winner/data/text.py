"""Raw text to CoNLL-2003 / Penn Treebank tokens that keep their character offsets, and to sentences.

A tagger sees tokens as CoNLL-2003 wrote them, so raw text is cut the same way: initialisms and
abbreviations keep their period (`U.S.`, `Mr.`, `a.m.`, `J.`), `AT&T` and `S&P` stay whole while a
free-standing `&` is its own token, hyphenated words and numbers with commas or decimals stay whole
(`EU-wide`, `47,600`, `1996-08-22`, `3.5`), currency prefixes are one token (`US$`, `C$`) and `$`
is split from its number, clitics split as CoNLL splits them (`Germany 's`, `does n't`, `ca n't`,
`they 're`) while `o'clock` and `O'Neill` stay whole, and every other punctuation mark is a token.

Every token keeps `start` / `end` into the original string, so `text[t.start:t.end] == t.text`;
`model_form` gives the form the model reads (curly quotes become straight ones, as in CoNLL).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Abbreviations written with their period in news text (lowercase, without the period). Those that are also
# ordinary words keep the period only when capitalised (`Gen.`, `Wash.`) or, for `No. 1`, before a number.
ABBREVIATIONS = frozenset("""
    mr mrs ms dr jr sr st messrs mme mlle prof capt lt sgt cmdr corp inc ltd plc bros vs etc cf approx
    jan feb apr jun jul aug sep sept oct nov calif colo conn fla okla tenn ariz minn mich kan ky ala
""".split())
CAPITALISED_ABBREVIATIONS = frozenset("""
    gen gov sen rep rev col maj adm hon pres co dept univ assn mon tue tues wed thu thur thurs fri sat sun mar
    dec ark del ga ill ind la mass md miss mo mont neb nev ore pa va vt wash wis wyo mt ft ave blvd rd
""".split())
NUMBER_ABBREVIATIONS = frozenset("no nos vol vols fig figs pp ch sec art".split())

_TOKEN = re.compile(r"""
    (?:[A-Za-z]\.){2,}(?![A-Za-z])               # initialisms: U.S. a.m. m.p.h.
  | [A-Z]{1,2}\$                                # currency prefixes: US$ C$ HK$
  | (?:(?<!\S)\+)?[A-Za-z]?\d+(?:[.,:/-]\d+)+[A-Za-z]*(?:-\w+)*  # numbers: 47,600 3.5 10:30 46-5/8 77.01-81.80
  | (?<!\S)\+\d+                                # a telephone prefix: +44
  | (?<![\w.])\.\d+                            # decimals without a leading zero: .778
  | \w+(?:[-&]\w+|['\u2019]\w+)*                 # words, with inner hyphens, ampersands, apostrophes
  | \.\.\.|--|``|''                             # multi-character punctuation
  | \S                                          # any other mark on its own
""", re.VERBOSE)
_CLITIC = re.compile(r"(?i)(?<=\w)(n['\u2019]t|['\u2019](?:s|re|ve|ll|m|d))$")  # can't -> ca n't
_LIST_NUMBER = re.compile(r"\.[ \t]+[A-Z]")  # `1. Jesper Parnevik`: a ranking's numbers keep their period
_CURLY = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2018": "'", "\u2019": "'",
                        "\u00ab": '"', "\u00bb": '"'})
_SENTENCE_END = {".", "!", "?", "...", "?!"}
# Fast tokenising (split_line): a word holding a mark besides word characters; in text whose tokens are
# separated by whitespace, what may be a clitic ending a token.
_MIXED_WORD = re.compile(r"(?<!\S)(?=\S*[^\w\s])\S\S+")
_CLITIC_ANYWHERE = re.compile(r"(?i)(?<=\w)['\u2019](?:t|s|re|ve|ll|m|d)(?!\S)")
_OPENERS = {'"', "'", "``", "`", "(", "[", "\u201c", "\u2018", "\u00ab"}
_CLOSERS = {'"', "'", ")", "]", "}", "''", "\u201d", "\u2019", "\u00bb"}


@dataclass(frozen=True)
class Token:
    """One token: its text exactly as in the input and its character offsets there (end exclusive)."""

    text: str
    start: int
    end: int


def tokenize_with_offsets(text: str, offset: int = 0) -> list[Token]:
    """Tokens of `text` with offsets (shifted by `offset`, for a line inside a larger text)."""
    tokens: list[Token] = []
    pos = 0
    while (m := _TOKEN.search(text, pos)) is not None:
        piece, start, end = m.group(), m.start(), m.end()
        if (piece[0].isalpha() and piece[-1].isalnum() and _takes_period(piece, text, end)
                or not tokens and piece.isdigit() and _LIST_NUMBER.match(text, end)):
            piece, end = piece + ".", end + 1
        pos = end
        clitic = _CLITIC.search(piece)
        if clitic and clitic.start() > 0:
            cut = start + clitic.start()
            tokens.append(Token(piece[: clitic.start()], offset + start, offset + cut))
            tokens.append(Token(piece[clitic.start():], offset + cut, offset + end))
        else:
            tokens.append(Token(piece, offset + start, offset + end))
    return tokens


def _takes_period(word: str, text: str, end: int) -> bool:
    """Whether the period right after `word` belongs to it: an abbreviation or an initial (`J.`)."""
    if end >= len(text) or text[end] != "." or text[end + 1 : end + 2] == ".":
        return False
    if len(word) == 1 and word.isupper():  # an initial; a sentence ending in a capital letter is rare
        return True
    lower = word.lower()
    if lower in ABBREVIATIONS:
        return True
    if lower in CAPITALISED_ABBREVIATIONS:
        return word[0].isupper()
    return lower in NUMBER_ABBREVIATIONS and re.match(r"\.\s*\d", text[end:]) is not None


def tokenize(text: str) -> list[str]:
    """The token strings of `text` (CoNLL-2003 conventions, see the module docstring)."""
    return [t.text for t in tokenize_with_offsets(text)]


def model_form(token: str) -> str:
    """The form a model trained on CoNLL reads: curly quotes straightened."""
    return token.translate(_CURLY)


def model_forms(tokens: list[str]) -> list[str]:
    """`model_form` of every token, in one pass over them all (`tokens` itself when nothing changes)."""
    joined = "\n".join(tokens)
    straight = joined.translate(_CURLY)
    if straight == joined:
        return tokens
    forms = straight.split("\n")
    return forms if len(forms) == len(tokens) else [model_form(t) for t in tokens]


def split_sentences(tokens: list[Token]) -> list[list[Token]]:
    """Tokens grouped into sentences: a sentence ends after . ! ? (and any closing quotes or brackets written
    right after them) when the next token starts with a capital letter, a digit or an opening quote."""
    sentences: list[list[Token]] = []
    current: list[Token] = []
    ended = False
    for tok in tokens:
        closes = tok.text in _CLOSERS and bool(current) and current[-1].end == tok.start
        if ended and not closes and (tok.text[0].isupper() or tok.text[0].isdigit() or tok.text in _OPENERS):
            sentences.append(current)
            current, ended = [], False
        current.append(tok)
        if tok.text in _SENTENCE_END:
            ended = True
        elif not closes:
            ended = False
    if current:
        sentences.append(current)
    return sentences


# ------------------------------------------------------------------ the same, fast, for whole lines


def split_line(text: str) -> tuple[list[str], list[int]]:
    """The token strings of `text` and the lengths of its sentences: what `tokenize_with_offsets` and
    `split_sentences` give, found with a few passes over the whole line instead of a Python step per token."""
    tokens = line_tokens(text)
    return tokens, sentence_lengths(text, tokens)


def line_tokens(text: str) -> list[str]:
    """The token strings of `tokenize_with_offsets(text)`.

    No token crosses whitespace and the regex looks no further than the whitespace around a word, so a word
    of word characters only, or of one character, is one token; only the other words go through the regex.
    Its matches are the tokens but for the periods abbreviations take and the clitics split off, done after.
    """
    spaced = _MIXED_WORD.sub(_spaced_tokens, text)
    pieces = spaced.split()
    if "." in text and _period_candidates(pieces):
        pieces = _take_periods(text, pieces)
    if ("'" in text or "\u2019" in text) and _CLITIC_ANYWHERE.search(spaced):
        return [part for piece in pieces for part in _clitic_split(piece)]
    return pieces


def _spaced_tokens(word: re.Match) -> str:
    return " ".join(_TOKEN.findall(word.group()))


def _period_candidates(pieces: list[str]) -> bool:
    """Whether a "." match follows one that may take it (a first number, an abbreviation, an initial). Only
    a "." match can be the period `tokenize_with_offsets` adds: "..." is refused there, and ".5" never comes
    right after a word character."""
    i = 0
    while True:
        try:
            i = pieces.index(".", i + 1)
        except ValueError:
            return False
        word = pieces[i - 1]
        if i == 1 and word.isdigit() or _may_take_period(word):
            return True


def _may_take_period(word: str) -> bool:
    """`_takes_period` without looking at what follows the period (so True whenever it might be)."""
    if not (word[0].isalpha() and word[-1].isalnum()):
        return False
    lower = word.lower()
    return (len(word) == 1 and word.isupper() or lower in ABBREVIATIONS or lower in NUMBER_ABBREVIATIONS
            or lower in CAPITALISED_ABBREVIATIONS and word[0].isupper())


def _take_periods(text: str, pieces: list[str]) -> list[str]:
    """The regex's matches with every period that `tokenize_with_offsets` gives the match before it joined to
    it: the decision it makes, on the same text, match by match (matching goes on after the period either way)."""
    starts = _starts(text, pieces)
    out: list[str] = []
    i, n = 0, len(pieces)
    while i < n:
        piece = pieces[i]
        end = starts[i] + len(piece)
        if (i + 1 < n and pieces[i + 1] == "." and starts[i + 1] == end
                and (piece[0].isalpha() and piece[-1].isalnum() and _takes_period(piece, text, end)
                     or i == 0 and piece.isdigit() and _LIST_NUMBER.match(text, end))):
            out.append(piece + ".")
            i += 2
        else:
            out.append(piece)
            i += 1
    return out


def _clitic_split(piece: str) -> tuple[str, ...]:
    clitic = _CLITIC.search(piece)
    if clitic and clitic.start() > 0:
        return piece[: clitic.start()], piece[clitic.start():]
    return (piece,)


def sentence_lengths(text: str, tokens: list[str]) -> list[int]:
    """The lengths of the sentences `split_sentences` cuts `tokens` (the tokens of `text`, in order) into."""
    if not tokens:
        return []
    marks = text.count(".") + text.count("!") + text.count("?")
    if not marks or marks == 1 and tokens[-1] in _SENTENCE_END:
        return [len(tokens)]
    ends = sum(map(tokens.count, _SENTENCE_END))
    if not ends or ends == 1 and tokens[-1] in _SENTENCE_END:
        return [len(tokens)]
    lengths: list[int] = []
    starts: list[int] | None = None
    cut, ended = 0, False
    for i, tok in enumerate(tokens):
        if ended:
            if tok in _CLOSERS:
                starts = starts or _starts(text, tokens)
                if starts[i] == starts[i - 1] + len(tokens[i - 1]):
                    continue  # a closing mark written right after: the sentence goes on ending
            if tok[0].isupper() or tok[0].isdigit() or tok in _OPENERS:
                lengths.append(i - cut)
                cut = i
        ended = tok in _SENTENCE_END
    lengths.append(len(tokens) - cut)
    return lengths


def _starts(text: str, tokens: list[str]) -> list[int]:
    """Each token's offset in `text`: only whitespace lies between tokens, so each is the next occurrence."""
    out, pos = [], 0
    for tok in tokens:
        pos = text.index(tok, pos)
        out.append(pos)
        pos += len(tok)
    return out
