"""The tokenizer: CoNLL-2003 / Penn Treebank conventions, character offsets, sentences, and agreement with the
token sequences of CoNLL-2003's own text."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from winner.data.conll import read_conll
from winner.data.text import model_form, split_sentences, tokenize, tokenize_with_offsets

CONLL = Path(__file__).resolve().parents[2] / "shared" / "data" / "conll2003"
CASES = {
    "Mr. Smith of AT&T said": ["Mr.", "Smith", "of", "AT&T", "said"],
    "the U.S. economy and the U.S.": ["the", "U.S.", "economy", "and", "the", "U.S."],
    "at 10 a.m. J. Smith left": ["at", "10", "a.m.", "J.", "Smith", "left"],
    "Marks & Spencer, S&P 500": ["Marks", "&", "Spencer", ",", "S&P", "500"],
    "an EU-wide, year-earlier rise": ["an", "EU-wide", ",", "year-earlier", "rise"],
    "47,600 tonnes, 3.5%, $12.5 and US$ 1.2 on 1996-08-22": ["47,600", "tonnes", ",", "3.5", "%", ",", "$", "12.5",
                                                            "and", "US$", "1.2", "on", "1996-08-22"],
    "Germany's rules don't apply, we're told; can't won't": ["Germany", "'s", "rules", "do", "n't", "apply", ",",
                                                             "we", "'re", "told", ";", "ca", "n't", "wo", "n't"],
    "at o'clock O'Neill said": ["at", "o'clock", "O'Neill", "said"],
    "the players' union": ["the", "players", "'", "union"],
    "He said \u201cno\u201d to Germany\u2019s plan": ["He", "said", "\u201c", "no", "\u201d", "to", "Germany",
                                                      "\u2019s", "plan"],
    "I said no. He won 3-1 (a .500 record)...": ["I", "said", "no", ".", "He", "won", "3-1", "(", "a", ".500",
                                                "record", ")", "..."],
    "Inc. and Corp. and Gen. Motors in Wash. but sun. is not": ["Inc.", "and", "Corp.", "and", "Gen.", "Motors",
                                                                "in", "Wash.", "but", "sun", ".", "is", "not"],
    "No. 1 and no.": ["No.", "1", "and", "no", "."],
    "1. Jesper Parnevik ( Sweden )": ["1.", "Jesper", "Parnevik", "(", "Sweden", ")"],
}


@pytest.mark.parametrize("text", CASES)
def test_conventions(text):
    assert tokenize(text) == CASES[text]


@given(st.lists(st.sampled_from(list("aZ9 .,'-&$+\u2019\u201c\n\t()") + ["U.S.", "Mr.", "n't", "s "]),
                max_size=40).map("".join))
def test_offsets_index_the_text(text):
    tokens = tokenize_with_offsets(text)
    assert all(text[t.start:t.end] == t.text and t.text.strip() == t.text and t.text for t in tokens)
    assert all(a.end <= b.start for a, b in zip(tokens, tokens[1:], strict=False))
    assert "".join(t.text for t in tokens) == "".join(text.split())  # nothing lost, nothing added


def test_offset_shift_and_model_form():
    assert [(t.start, t.end) for t in tokenize_with_offsets("a b", offset=10)] == [(10, 11), (12, 13)]
    assert [model_form(t) for t in tokenize("\u201cGermany\u2019s\u201d")] == ['"', "Germany", "'s", '"']


def test_sentences():
    text = 'I said no. Then he left! "OK," she said. In the U.S. Senate, Mr. Smith spoke.'
    sents = [" ".join(t.text for t in s) for s in split_sentences(tokenize_with_offsets(text))]
    assert sents == ["I said no .", "Then he left !", '" OK , " she said .',
                     "In the U.S. Senate , Mr. Smith spoke ."]


def detokenize(tokens: list[str]) -> str:
    """Plausible original text of a CoNLL sentence: no space before closing punctuation and clitics, none after
    opening brackets and currency signs, straight double quotes alternating open and close."""
    closing = {",", ".", ";", ":", "!", "?", "%", ")", "]", "}", "...", "'s", "n't", "'re", "'ve", "'ll", "'m", "'d"}
    out, open_quote, glue_next = "", False, True
    for tok in tokens:
        glue = glue_next or tok.lower() in closing
        glue_next = tok in {"(", "[", "{"} or tok.endswith("$") and len(tok) <= 3
        if tok == "'":  # a plural possessive after an s, else an opening quote
            glue, glue_next = (True, False) if out[-1:] in ("s", "S") and not glue_next else (glue_next, True)
        if tok == '"':
            open_quote = not open_quote
            glue, glue_next = glue or not open_quote, open_quote
        out += ("" if glue else " ") + tok
    return out


@pytest.mark.shared_data
@pytest.mark.skipif(not (CONLL / "test.txt").is_file(), reason=f"CoNLL-2003 is not in {CONLL}")
def test_agrees_with_conll2003_tokens():
    """Every sentence of CoNLL-2003 test, detokenised and tokenised again, must mostly come back as CoNLL cut it
    (what is left: the data's own quirks such as `...I`, `kick-` and `Corp .` beside `Corp.`)."""
    sentences = read_conll(CONLL / "test.txt")
    same = sum(tokenize(detokenize(s.tokens)) == s.tokens for s in sentences)
    assert same / len(sentences) >= 0.98, f"{same} of {len(sentences)} sentences tokenised as CoNLL-2003 has them"
