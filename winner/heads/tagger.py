"""The softmax NER tagger: a window MLP over word + casing embeddings, one tag per token.

Window approach of Collobert et al. (2011), https://jmlr.org/papers/v12/collobert11a.html: each token's
tag is predicted from the 2w+1 words around it. Training may use a richer tag scheme (IOBES by default)
than the data; predictions are decoded under that scheme's transition constraints (Viterbi over the
per-token log-probabilities) and converted back to the data's scheme.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from winner.core.chars import CharWindowMLP, read_arrays
from winner.core.console import compiling_notice
from winner.core.context import (
    CODE_POSITIONS,
    ContextCodes,
    Links,
    coded_log_proba,
    model_word_dim,
    occurrence_links,
    sentence_bounds,
)
from winner.core.mlp import WindowMLP
from winner.data.conll import convert_tags
from winner.data.vocab import PAD, Vocab
from winner.data.windows import CASING_VOCAB, featurize, word_keys
from winner.errors import ModelFormatError, WinnerError
from winner.heads.characters import CharSpec, char_log_proba, char_windows
from winner.heads.consistency import vote_types
from winner.heads.crf import Transitions
from winner.heads.decode import conversion_table, decode_batch, tag_strings
from winner.heads.model_io import load_window_head, read_model_config, save_mlp_model
from winner.heads.settings import CONSISTENCY

KIND = "tagger"


def allowed_transitions(tags: Sequence[str], scheme: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(allowed (T, T), start_ok (T,), end_ok (T,)) for well-formed sequences in `scheme`."""
    T = len(tags)
    prefix = [t[0] if t != "O" else "O" for t in tags]
    types = [t[2:] if t != "O" else "" for t in tags]
    allowed = np.ones((T, T), dtype=np.bool_)
    start = np.ones(T, dtype=np.bool_)
    end = np.ones(T, dtype=np.bool_)
    for j in range(T):
        for i in range(T):
            inside = prefix[i] in "BI" and types[i] == types[j]  # i opens or continues an entity of j's type
            if scheme == "iobes":
                if prefix[j] in "IE":
                    allowed[i, j] = inside
                else:  # O, B, S may only follow a closed entity
                    allowed[i, j] = prefix[i] in ("O", "E", "S")
            elif scheme == "iob2" and prefix[j] == "I":
                allowed[i, j] = inside
            elif scheme == "iob1" and prefix[j] == "B":
                allowed[i, j] = prefix[i] in "BI" and types[i] == types[j]
        if scheme == "iobes":
            start[j] = prefix[j] in ("O", "B", "S")
            end[j] = prefix[j] in ("O", "E", "S")
        elif scheme == "iob2":
            start[j] = prefix[j] != "I"
        elif scheme == "iob1":
            start[j] = prefix[j] != "B"
    return allowed, start, end


@dataclass
class TaggerSpec:
    """What a tagger needs beyond its MLP: window size, tag set and schemes, decoding."""

    window: int
    tags: list[str]
    scheme: str  # the scheme the model predicts in
    output_scheme: str  # the scheme of the training data, used for output
    decode: str = "viterbi"
    chars: dict | None = None  # CharSpec's fields, or None: no character features
    # a sentence-level model's learned scores (crf.py), or None: a word-level (softmax) model
    transitions: list[list[float]] | None = None
    start: list[float] | None = None
    # context codes beyond the window (winner.core.context): {"mode": "sentence", "forget": a}, {"mode": "document",
    # "forget": a, "occurrences": K}, or None
    context: dict | None = None
    consistency: str = "none"  # "document": one entity type for the same words in a document (consistency.py)

    def to_json(self) -> dict:
        return {"window": self.window, "tags": self.tags, "scheme": self.scheme,
                "output_scheme": self.output_scheme, "decode": self.decode, "chars": self.chars,
                "transitions": self.transitions, "start": self.start, "context": self.context,
                "consistency": self.consistency}

    @property
    def positions(self) -> int:
        """The network's input positions: the window's, and the two context codes' if the model has them."""
        return 2 * self.window + 1 + (CODE_POSITIONS if self.context else 0)


def context_codes(spec: TaggerSpec, word_dim: int) -> ContextCodes:
    """The ContextCodes a saved spec.context describes; anything else is refused in one line."""
    context = spec.context
    is_dict = isinstance(context, dict)
    mode = context.get("mode") if is_dict else None
    forget = context.get("forget") if is_dict else None
    most = context.get("occurrences") if is_dict else None
    expected = {"sentence": {"mode", "forget"}, "document": {"mode", "forget", "occurrences"}}
    if (mode not in expected or set(context) != expected[mode] or isinstance(forget, bool)
            or not isinstance(forget, int | float) or not 0.0 <= forget <= 1.0
            or (mode == "document" and (isinstance(most, bool) or not isinstance(most, int) or most < 1))):
        raise ModelFormatError(f"tagger context must be {{\"mode\": \"sentence\", \"forget\": a number in [0, 1]}} "
                               f"or {{\"mode\": \"document\", \"forget\": …, \"occurrences\": a positive integer}}, "
                               f"got {context!r}")
    return ContextCodes(spec.window, float(forget), word_dim, CASING_VOCAB.stoi[PAD], mode, most or 0)


MAX_DOCUMENT_TOKENS = 1 << 16  # a longer document is read in pieces (memory, and `winner ner tag`'s batches)


class DocumentPieces:
    """Where the documents that document codes read end: with their document, or at the first sentence end that
    brings a piece to MAX_DOCUMENT_TOKENS tokens. Fed sentence by sentence (or record by record), so a streaming
    reader cuts exactly where `sentences_per_document` cuts a whole list."""

    def __init__(self) -> None:
        self.tokens = 0

    def ends(self, tokens: int, document_ends: bool) -> bool:
        """Whether a piece ends after a sentence (or a record) of `tokens` tokens."""
        self.tokens += tokens
        if document_ends or self.tokens >= MAX_DOCUMENT_TOKENS:
            self.tokens = 0
            return True
        return False


def sentences_per_document(lengths: np.ndarray, documents: Sequence | None) -> np.ndarray:
    """How many consecutive sentences each document (each piece of a long one, see DocumentPieces) holds, from the
    sentences' lengths and each sentence's document id (None: one document)."""
    n_sentences = len(lengths)
    if documents is None:
        documents = [0] * n_sentences
    documents = list(documents)
    if len(documents) != n_sentences:
        raise ValueError(f"documents names {len(documents)} sentences' documents, expected {n_sentences}")
    cuts = [k for k in range(1, n_sentences) if documents[k] != documents[k - 1]]
    per_document = np.diff(np.array([0, *cuts, n_sentences], np.int64)) if n_sentences else np.zeros(0, np.int64)
    if int(np.sum(lengths)) < MAX_DOCUMENT_TOKENS:
        return per_document
    pieces, counter, n = [], DocumentPieces(), 0
    last = set(np.cumsum(per_document) - 1)
    for k, length in enumerate(lengths):
        n += 1
        if counter.ends(int(length), k in last):
            pieces.append(n)
            n = 0
    return np.array(pieces, np.int64)


def checked_consistency(consistency: str) -> str:
    """`consistency` if the tagger knows it, else a one-line error (for a value a user gives, not a file's)."""
    if consistency not in CONSISTENCY:
        raise WinnerError(f"consistency must be one of {', '.join(CONSISTENCY)}, got {consistency!r}")
    return consistency


def reads_documents(model_dir: Path, consistency: str | None = None) -> bool:
    """Whether a saved tagger reads documents, with document codes or a consistency vote (its input is then cut
    only between documents), from its config alone; `consistency` replaces the model's own."""
    spec = read_model_config(model_dir, KIND).get(KIND, {})
    context = spec.get("context")
    vote = spec.get("consistency") if consistency is None else consistency
    return (isinstance(context, dict) and context.get("mode") == "document") or vote == "document"


class Tagger:
    """A trained (or training) tagger: MLP + word vocabulary + tag set."""

    def __init__(self, model: WindowMLP, words: Vocab, spec: TaggerSpec):
        if model.config.n_out != len(spec.tags):
            raise ModelFormatError(f"Wout has {model.config.n_out} outputs, expected one per tag ({len(spec.tags)})")
        self.chars = CharSpec(**spec.chars) if spec.chars else None
        if self.chars is not None and not isinstance(model, CharWindowMLP):
            raise ModelFormatError("a tagger with character features needs a CharWindowMLP")
        self.model = model
        self.words = words
        self.spec = spec
        self.tag_vocab = Vocab(spec.tags)
        self._constraints = allowed_transitions(spec.tags, spec.scheme)
        self._tables: dict[str, np.ndarray] = {}  # output scheme -> conversion_table, made when first asked
        self.context = context_codes(spec, model_word_dim(model)) if spec.context else None
        if spec.consistency not in CONSISTENCY:
            raise ModelFormatError(f"tagger consistency must be one of {', '.join(CONSISTENCY)}, got "
                                   f"{spec.consistency!r}")
        self.crf = None
        if spec.transitions is not None:
            try:
                self.crf = Transitions.from_lists(spec.transitions, spec.start or [])
            except ValueError as e:
                raise ModelFormatError(f"tagger {e}") from None
            if self.crf.n_tags != len(spec.tags):
                raise ModelFormatError(f"tagger transitions are for {self.crf.n_tags} tags, expected {len(spec.tags)}")

    def featurize(self, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Word and casing windows (N_tokens, 2w+1) for all tokens of all sentences."""
        return featurize(sentences, self.words, self.spec.window)

    def target_ids(self, tag_sequences: Sequence[Sequence[str]], source_scheme: str) -> np.ndarray:
        """Tag ids in the model's scheme, for training. Tags the model does not know are an error."""
        out = []
        for tags in tag_sequences:
            for t in convert_tags(list(tags), source_scheme, self.spec.scheme):
                if t not in self.tag_vocab:
                    raise ValueError(f"tag {t!r} is not in the model's tag set {self.spec.tags}")
                out.append(self.tag_vocab.stoi[t])
        return np.asarray(out, dtype=np.int64)

    def predict(self, sentences: Sequence[Sequence[str]], scheme: str | None = None,
                batch: int = 4096, method: str | None = None, documents: Sequence | None = None) -> list[list[str]]:
        """Tags of every token, in `scheme` (default: the training data's scheme); `method` as in
        WindowMLP.predict_logits, None for `stable_method`; `documents` as in log_proba."""
        return self.predict_scored(sentences, scheme, batch, method, documents)[0]

    def predict_scored(self, sentences: Sequence[Sequence[str]], scheme: str | None = None,
                       batch: int = 4096, method: str | None = None, documents: Sequence | None = None
                       ) -> tuple[list[list[str]], list[np.ndarray]]:
        """Tags of every token as `predict` gives them, and each token's model probability of its decoded tag."""
        if isinstance(sentences, str) or any(isinstance(s, str) for s in sentences):
            raise TypeError("each sentence is a list of tokens, not a str (which would be read character by "
                            "character); for raw text use winner.load(RUN)(text)")
        if not sentences:
            return [], []
        offsets = np.zeros(len(sentences) + 1, np.int64)
        np.cumsum([len(s) for s in sentences], out=offsets[1:])
        tags, probs = self.predict_flat(sentences, offsets, scheme, batch, method, documents)
        bounds = offsets.tolist()
        return ([tags[a:b] for a, b in zip(bounds, bounds[1:], strict=False)],
                np.split(probs, bounds[1:-1]))

    def predict_flat(self, sentences: Sequence[Sequence[str]], offsets: np.ndarray, scheme: str | None = None,
                     batch: int = 4096, method: str | None = None, documents: Sequence | None = None
                     ) -> tuple[list[str], np.ndarray]:
        """predict_scored's tags and probabilities of all sentences laid end to end (sentence k at
        offsets[k]:offsets[k+1]): the whole batch decoded in one call, with no Python step per sentence."""
        with compiling_notice():
            logp = self.log_proba(sentences, batch, method, documents)
            path = self.decode(logp, offsets)
            if self.spec.consistency == "document":
                lengths = np.diff(offsets)
                path = vote_types(path, offsets, sentences_per_document(lengths, documents),
                                  word_keys([w for s in sentences for w in s]), logp, self.spec.tags)
        probs = np.exp(logp[np.arange(len(path)), path].astype(np.float64))
        return tag_strings(path, offsets, self.tag_table(scheme or self.spec.output_scheme)), probs

    def decode(self, logp: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """(N,) int32 tag ids of the sentences laid end to end in logp (N, n_tags), in the model's scheme."""
        allowed, start, end = self._constraints
        T = len(self.spec.tags)
        A, first = (self.crf.A, self.crf.start) if self.crf is not None else (np.zeros((T, T)), np.zeros(T))
        path = np.empty(logp.shape[0], np.int32)
        decode_batch(np.ascontiguousarray(logp, dtype=np.float64), offsets, A, first, allowed, start, end,
                     self.spec.decode != "viterbi", path)
        return path

    def tag_table(self, scheme: str) -> np.ndarray:
        """The conversion_table from the model's scheme to `scheme`."""
        if scheme not in self._tables:
            self._tables[scheme] = conversion_table(self.spec.tags, self.spec.scheme, scheme)
        return self._tables[scheme]

    @property
    def stable_method(self) -> str:
        """The prediction path used unless another is asked for: the table lookup when the model has one, else
        matrix products. Fixed, not chosen per call, so that a sentence gets the same bits in any batch."""
        return "lookup" if self.model.lookup_supported else "gemm"

    def log_proba(self, sentences: Sequence[Sequence[str]], batch: int = 4096, method: str | None = None,
                  documents: Sequence | None = None) -> np.ndarray:
        """(N_tokens, n_tags) log-probabilities of every token's tags; `method` as in predict (with character
        windows: for windows of vocabulary words only, matrix products for windows holding an unseen word).
        `documents`: each sentence's document id, consecutive sentences with the same id forming one document
        (None: the sentences given are one document; a document of more than MAX_DOCUMENT_TOKENS tokens is read in
        pieces); only a model with document codes reads it (and a consistency vote, in predict_flat)."""
        method = method or self.stable_method
        if self.context is not None:
            lengths = np.fromiter(map(len, sentences), np.int64, count=len(sentences))
            if self.chars is not None:
                ids, feats, extra = char_windows(self.model, self.chars, self.words, sentences, self.spec.window)
            else:
                ids, feats = self.featurize(sentences)
                extra = np.zeros((0, self.model.config.embed_dim), self.model.dtype)
            links, per_document = None, None
            if self.context.mode == "document":
                per_document = sentences_per_document(lengths, documents)
                links = self._links(sentences, lengths, per_document)
            return coded_log_proba(self.model, self.context, ids, feats, lengths, extra, method, batch, links,
                                   per_document)
        if self.chars is not None:
            return char_log_proba(self.model, self.chars, self.words, sentences, self.spec.window, method)
        ids, feats = self.featurize(sentences)
        return self.model.predict_log_proba(ids, feats, batch=batch, method=method)

    def coded_inputs(self, sentences: Sequence[Sequence[str]], ids: np.ndarray, feats: np.ndarray,
                     documents: Sequence | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, feats, table): the windows ids/feats of every token of `sentences` with their context codes, as
        rows of `table` (the rows they read, then the codes), for the ordinary kernels (explanations)."""
        lengths = np.fromiter(map(len, sentences), np.int64, count=len(sentences))
        lo, hi = sentence_bounds(lengths)
        links = self.links(sentences, documents) if self.context.mode == "document" else None
        batch = self.context.batch(self.model.E, self.model.E[:0], ids, feats, np.arange(len(ids)),
                                   ids[:, self.spec.window], lo, hi, links)
        return batch.ids, batch.feats, batch.table

    def links(self, sentences: Sequence[Sequence[str]], documents: Sequence | None = None) -> Links:
        """Each token's nearest other occurrences of its word in its document (documents as in log_proba), as the
        model's document codes read them."""
        lengths = np.fromiter(map(len, sentences), np.int64, count=len(sentences))
        return self._links(sentences, lengths, sentences_per_document(lengths, documents))

    def _links(self, sentences: Sequence[Sequence[str]], lengths: np.ndarray, per_document: np.ndarray) -> Links:
        tokens = [w for s in sentences for w in s]
        doc_tokens = np.add.reduceat(lengths, np.cumsum(per_document) - per_document) if len(lengths) else lengths
        return occurrence_links(word_keys(tokens), doc_tokens, self.context.occurrences)

    # ------------------------------------------------------------ I/O

    def save(self, path: str | Path, training: dict | None = None) -> None:
        if self.crf is not None:  # the learned scores as they are now (training changes them in place)
            self.spec.transitions, self.spec.start = self.crf.A.tolist(), self.crf.start.tolist()
        save_mlp_model(path, KIND, self.model, self.words, self.spec.to_json(), training)

    @classmethod
    def load(cls, path: str | Path, consistency: str | None = None) -> Tagger:
        """The tagger saved in `path`; `consistency` replaces the model's own decoding vote."""
        model, words, spec = load_window_head(path, KIND, TaggerSpec)
        if consistency is not None:
            spec.consistency = checked_consistency(consistency)
        if spec.chars:
            chars = CharSpec(**spec.chars)
            model = CharWindowMLP.from_model(model, chars.config(), read_arrays(Path(path) / "params.npz", "char_"))
        return cls(model, words, spec)
