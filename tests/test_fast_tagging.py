"""The fast paths of streaming tagging equal the straightforward ones: whole-line tokenising (split_line) equals
tokenize_with_offsets + split_sentences, whole-batch features equal the per-token normalise/casing, and
`ner tag`'s Doc-free CoNLL writing gives the bytes the per-Doc writer gives, on odd inputs too.
"""

from __future__ import annotations

import io
import random
import re
from pathlib import Path

import numpy as np
import pytest

from winner.core.chars import CharWindowMLP
from winner.core.mlp import MLPConfig
from winner.data.conll import append_column, convert_tags
from winner.data.stream import ConllBlock, Source, chunk_records
from winner.data.text import model_form, model_forms, split_line, split_sentences, tokenize_with_offsets
from winner.data.vectorised import casing_classes, normalised_forms
from winner.data.vocab import PAD, UNK, Vocab
from winner.data.windows import CASING_VOCAB, CASINGS, casing, casing_ids, featurize, make_windows, normalise
from winner.heads import tagging
from winner.heads.characters import CharSpec, attach_words, char_log_proba, char_windows
from winner.heads.docs import prepare, tag_prepared
from winner.heads.tagger import Tagger
from winner.heads.writers import ConllWriter

FIXTURES = Path(__file__).parent / "fixtures"
ODD_LINES = [
    "", " ", "\t \u00a0", "a", ".", "Mr. Smith went to Washington. He said: \"Hi.\" Then left.",
    "1. Jesper Parnevik 2. Tiger Woods", "He can't go. They're U.S. citizens' dogs, aren\u2019t they?",
    "It's 3 p.m. Dr. No. 5 is here.", "a.m. J. R. R. Tolkien", "Wash. D.C. in Jan. 1990.",
    "Go! 'Now' she said. \"Stop.\" (Really.) OK", "\u00c9. \u03a3. x", "No. 7 and no. 8 and Gen. Lee, gen. x",
    "\u201cCurly\u201d quotes \u2018here\u2019 . \u00abGuillemets\u00bb", "AT&T and S&P ; & alone ; US$ 5 , C$5",
    "47,600 3.5 10:30 46-5/8 .778 +44 EU-wide 1996-08-22 o'clock O'Neill", "Wait ... what ?! -- `` '' ",
    "\u0130stanbul \u01c5emal \u03bf\u03b4\u03bf\u03a3 \ufb01ne \u212a", "x_y __init__ a_1 \U0001f600 smile",
    "end.\" Next", "end.) Next", "end . ' Next", "end .' Next", "Co. Ltd. Inc. etc. vs. St. Mt.",
]


def reference_split(text: str) -> tuple[list[str], list[int]]:
    sentences = split_sentences(tokenize_with_offsets(text))
    return [t.text for s in sentences for t in s], [len(s) for s in sentences]


def _random_lines(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = "aAbB.,'\u2019\"\u201c\u201d()!? -&$1209MrsJUSnto\t\u00c9\u03a3\u2026_+:/\u00a0"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(n)]


def _abbreviation_lines(n: int, seed: int) -> list[str]:
    """Lines dense in what may take a period: initials, abbreviations, ranking numbers, clitics."""
    rng = random.Random(seed)
    words = "J. Mr. no. No. 1. 2 A. gen. Gen. U.S. can't , jr. ... . \t Wash. x. 3 \u00c9.".split(" ")
    return [" ".join(rng.choice(words) for _ in range(rng.randint(1, 12))).replace(" .", rng.choice([".", " ."]))
            for _ in range(n)]


def _conll_sentences() -> list[list[str]]:
    out, cur = [], []
    for line in (FIXTURES / "conll2003_sample.txt").read_text(encoding="utf-8").splitlines():
        cols = line.split()
        if not cols or cols[0] == "-DOCSTART-":
            if cur:
                out.append(cur)
            cur = []
        else:
            cur.append(cols[0])
    return out + [cur] if cur else out


def test_split_line_equals_tokenizer_and_sentence_splitter():
    detokenised = [re.sub(r" ([.,!?;:')])", r"\1", " ".join(s)) for s in _conll_sentences()]
    long_line = " ".join(["Word", "U.S.", "can't", "."] * 2500 + ["Mr.", "End", "."])
    for line in [*ODD_LINES, *detokenised, " ".join(detokenised), long_line, *_random_lines(20_000, 0),
                 *_abbreviation_lines(20_000, 1)]:
        assert split_line(line) == reference_split(line), line


def test_model_forms_equals_model_form_per_token():
    for tokens in [[], ["plain"], ["\u201cq\u201d", "it\u2019s", "\u00abx\u00bb", "a"], ["a\nb", "\u2018"]]:
        assert model_forms(tokens) == [model_form(t) for t in tokens]


def reference_featurize(sentences, words: Vocab, half_width: int):
    """featurize as written token by token: the straightforward path the vectorised one must equal."""
    w = half_width

    def windows(per_sentence, pad):
        rows = []
        for s in per_sentence:
            padded = [pad] * w + list(s) + [pad] * w
            rows += [padded[i : i + 2 * w + 1] for i in range(len(s))]
        return np.asarray(rows, dtype=np.int32).reshape(len(rows), 2 * w + 1)

    ids = windows([[words.id(normalise(t)) for t in s] for s in sentences], words.pad_id or 0)
    feats = windows([[casing(t) for t in s] for s in sentences], CASING_VOCAB.stoi[PAD])
    return ids, feats


def _odd_tokens(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    pool = [chr(c) for c in range(0x3000)] + ["\u03a3", "\u03c2", "\u01c5", "A", "a", "1", "\u0345", "\u00ad"] * 50
    pool.remove("\n")
    return ["".join(rng.choice(pool) for _ in range(rng.randint(1, 5))) for _ in range(n)]


def test_casing_and_normalise_of_every_code_point_and_odd_tokens():
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000 and c != 10]
    assert casing_classes(chars).tolist() == [casing(c) for c in chars]
    assert normalised_forms(chars) == [normalise(c) for c in chars]
    tokens = _odd_tokens(50_000, 1)
    assert casing_classes(tokens).tolist() == [casing(t) for t in tokens]
    assert normalised_forms(tokens) == [normalise(t) for t in tokens]


@pytest.mark.parametrize("half_width", [0, 1, 2])
def test_featurize_equals_the_per_token_path(half_width):
    sentences = [*_conll_sentences(), [], ["a"], _odd_tokens(300, 2), ["x\ny", "", "Tab\there"], ["only"] * 5000]
    words = Vocab([PAD, UNK, *dict.fromkeys(normalise(t) for s in sentences[:20] for t in s)])
    got, want = featurize(sentences, words, half_width), reference_featurize(sentences, words, half_width)
    for g, r in zip(got, want, strict=True):
        assert g.dtype == np.int32 and np.array_equal(g, r)
    assert featurize([], words, half_width)[0].shape == (0, 2 * half_width + 1)
    with pytest.raises(KeyError, match="unseen"):
        featurize([["known", "unseen"]], Vocab(["known"]), half_width)


def _records() -> list:
    text = [line for line in ODD_LINES if line.strip()] + [" ".join(["Word", "Mr.", "can't", "."] * 3000)]
    conll = (FIXTURES / "conll2003_sample.txt").read_bytes() + "\u00dcnic\u00f6de X O\n\n\u201cq\u201d O\n".encode()
    blocks = list(chunk_records(conll, Source("x.conll", "conll", "iob1")))
    assert any(isinstance(b, ConllBlock) and not b.tokens for b in blocks)  # the -DOCSTART- block at the start
    return [*text, *blocks]


def _straightforward(tagger: Tagger, records: list) -> str:
    """One record at a time, through Docs, each line written as the CoNLL writer always wrote it."""
    out, method = [], tagger.stable_method
    for r in records:
        doc = tag_prepared(tagger, [prepare(r if isinstance(r, str) else list(r.tokens))], method)[0]
        if isinstance(r, ConllBlock):
            out.append(append_column(r.text, [convert_tags(doc.tags, tagger.spec.output_scheme, r.scheme)]))
        else:
            out.append("".join(f"{t.text} {tag}\n" for t, tag in zip(doc.tokens, doc.tags, strict=True)) + "\n")
    return "".join(out)


def test_conll_output_without_docs_equals_the_doc_path(tiny_tagger):
    tagger = Tagger.load(tiny_tagger)
    records = _records()
    fast = io.StringIO()
    counts = tagging.tag_into(tagger, records, ConllWriter(fast, tagger.spec.output_scheme))
    assert fast.getvalue() == _straightforward(tagger, records)
    assert counts.tokens == sum(len(prepare(r if isinstance(r, str) else list(r.tokens))[1]) for r in records)


def test_a_conll_token_holding_a_space_is_refused_as_before(tiny_tagger):
    tagger = Tagger.load(tiny_tagger)
    block = ConllBlock("a\u00a0b O\n", ("a\u00a0b",), ("O",), "iob1")
    with pytest.raises(ValueError, match="without spaces"):
        tagging.tag_into(tagger, [block], ConllWriter(io.StringIO(), tagger.spec.output_scheme))


def test_a_model_without_a_vocabulary_table_gets_bigger_batches_and_the_same_output(tiny_tagger, monkeypatch):
    tagger = Tagger.load(tiny_tagger)
    records = _records()
    default, bigger = io.StringIO(), io.StringIO()
    assert tagging.batch_tokens(tagger) == tagging.BATCH_TOKENS
    tagging.tag_into(tagger, records, ConllWriter(default, tagger.spec.output_scheme))
    monkeypatch.setattr(tagging, "LOOKUP_TABLE_BYTES", 0)
    monkeypatch.setattr(tagging, "BATCH_TOKENS", 50)
    assert tagging.batch_tokens(tagger) == 50 * tagging.BIG_VOCABULARY_BATCHES
    tagging.tag_into(tagger, records, ConllWriter(bigger, tagger.spec.output_scheme))
    assert bigger.getvalue() == default.getvalue()


def reference_char_log_proba(model, spec, words, sentences, half_width, method):
    """char_log_proba as it was: a vocabulary look-up per token, unseen words numbered as first met."""
    V, extra, per_sentence = len(words), {}, []
    for s in sentences:
        forms = [normalise(w) for w in s]
        per_sentence.append(np.array([words.stoi[f] if f in words.stoi else extra.setdefault(f, V + len(extra))
                                      for f in forms], dtype=np.int32))
    ids = make_windows(per_sentence, half_width, words.pad_id or 0)
    feats = make_windows(casing_ids(sentences), half_width, CASING_VOCAB.stoi[PAD])
    rows = np.zeros((len(extra), model.config.embed_dim), model.dtype)
    if extra:
        rows[:, : model.word_dim] = model.E[words.unk_id, : model.word_dim]
        rows[:, model.word_dim :] = model.word_vectors(*spec.encode(list(extra)))
    return model.predict_log_proba_extra(ids, feats, rows, method=method)


def _small_char_model(seed: int) -> tuple[Vocab, CharSpec, CharWindowMLP]:
    """A tiny tagger network with character windows over seven words, their characters attached."""
    words = Vocab([PAD, UNK, "paris", "a", "london", "ab0", "zz-top"])
    spec = CharSpec("abdilnoprstz0", 3, 4, 3)
    config = MLPConfig(n_positions=3, vocab_size=len(words), embed_dim=2 + spec.filters, n_out=5, hidden=(6,),
                       n_features=len(CASINGS), feature_dim=2)
    model = CharWindowMLP(config, spec.config(), seed=seed)
    attach_words(model, spec, words)
    return words, spec, model


@pytest.mark.parametrize("method", ["lookup", "gemm"])
def test_char_log_proba_equals_the_per_token_path(method):
    words, spec, model = _small_char_model(seed=0)
    sentences = [[], ["Paris"], ["unseen", "A", "London", "AB1", "unseen", "x\ny", ""], _odd_tokens(200, 3),
                 ["a", "paris"] * 50]
    got = char_log_proba(model, spec, words, sentences, 1, method)
    assert np.array_equal(got, reference_char_log_proba(model, spec, words, sentences, 1, method))


@pytest.mark.parametrize("vocabulary_table", [True, False])
def test_char_lookup_of_windows_with_unseen_words_equals_matrix_products(vocabulary_table, monkeypatch):
    """Windows holding a word the vocabulary lacks: the lookup path (the vocabulary's first-layer rows reused,
    only unseen words' computed) gives the matrix products' log-probabilities, in float64 to 1e-12."""
    if not vocabulary_table:
        monkeypatch.setattr("winner.core.mlp.LOOKUP_TABLE_BYTES", 0)
    words = Vocab([PAD, UNK, "paris", "a", "london", "ab0", "zz-top"])
    spec = CharSpec("abdilnoprstz0", 3, 4, 3)
    config = MLPConfig(n_positions=5, vocab_size=len(words), embed_dim=2 + spec.filters, n_out=5, hidden=(6, 4),
                       n_features=len(CASINGS), feature_dim=2, dtype="float64")
    model = CharWindowMLP(config, spec.config(), seed=1)
    attach_words(model, spec, words)
    sentences = [["Paris"], ["unseen", "A", "London", "AB1", "unseen", "new"], _odd_tokens(200, 4), ["a"] * 9]
    got = char_log_proba(model, spec, words, sentences, 2, "lookup")
    assert (model._vocab_table is not None) == vocabulary_table
    np.testing.assert_allclose(got, char_log_proba(model, spec, words, sentences, 2, "gemm"), rtol=1e-12,
                               atol=1e-12)


def test_windows_with_and_without_unseen_words_go_through_one_extended_table():
    """With the vocabulary's table, all windows take one lookup pass over it extended by the unseen words' rows:
    windows of vocabulary words keep the bits of the plain lookup path, and an id past the unseen rows is refused
    (the kernel does not bounds-check)."""
    words, spec, model = _small_char_model(seed=2)
    sentences = [["Paris", "unseen", "a", "London", "new", "AB0"] * 20, ["a", "paris"] * 40]
    ids, feats, rows = char_windows(model, spec, words, sentences, 1)
    plain = ~(ids >= len(words)).any(axis=1)
    assert plain.any() and not plain.all()
    got = model.predict_log_proba_extra(ids, feats, rows, method="lookup")
    assert model._vocab_table is not None
    assert np.array_equal(got[plain], model.predict_log_proba(ids[plain], feats[plain], method="lookup"))
    np.testing.assert_allclose(got, model.predict_log_proba_extra(ids, feats, rows, method="gemm"), atol=1e-5)
    bad = ids.copy()
    bad[0, 0] = len(words) + len(rows)
    with pytest.raises(ValueError, match="word ids must lie in"):
        model.predict_log_proba_extra(bad, feats, rows, method="lookup")
