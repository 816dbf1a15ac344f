"""Context beyond the window: fixed-size ordinally-forgetting encodings (FOFE, Xu et al. 2017, "A Local Detection
Approach for Named Entity Recognition and Mention Detection", https://aclanthology.org/P17-1114/) of the words left
and right of each window, as two more input blocks of the window MLP's first layer.

For the token at t of a sentence and window half-width w, the left code is L_t = sum_(k>=1) a^(k-1) e(x_(t-w-k))
over the sentence's words left of the window, and the right code R_t = sum_(k>=1) a^(k-1) e(x_(t+w+k)); a is the
forgetting factor and e(x) a row's first `word_dim` columns (the word vector; a character vector is left out, so a
code is a function of the word table alone). The window already reads its own 2w+1 words position by position, so
the codes start beyond it. A model with codes has n_positions = 2w+3: the window's, then L, then R.

Training and the straightforward path build, for a batch of windows, a table of the rows the batch reads followed
by its codes' rows, and run the ordinary kernels on it (window ids pointing at the words' rows, the two code
positions at the codes'); the codes' gradient then flows, a^(k-1)-scaled, into every row they sum. Tagging's fast
path uses that the first layer is linear: W_L L_t = a (W_L L_(t-1)) + W_L e(x_(t-w-1)), a recurrence over rows
projected once per distinct word, O(hidden) per token.

Document codes (mode "document") look across sentences instead: a document repeats its entities, and another
mention's neighbours often say what this one is ("Jordan said" beside "the Jordan team"). Each token is linked to
the K nearest other occurrences of its word (its lookup form) in its document; its left code is the mean over those
occurrences j of sum_(d=1..w) a^(d-1) e(x_(j-d)) within j's sentence, the right code the same with x_(j+d). This is
Ratinov & Roth 2009's context aggregation ("Design Challenges and Misconceptions in Named Entity Recognition",
https://aclanthology.org/W09-1119/), learned: the codes are sums of word rows, so backprop reaches every row they
read. A token with no other occurrence gets zero codes, as a token alone in its sentence gets from FOFE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from winner.core import layers, lookup, updates
from winner.core.fastmath import FAST
from winner.core.mlp import ACTIVATIONS, LOOKUP_TABLE_BYTES, SparseGrads, WindowMLP

CODE_POSITIONS = 2  # the left and the right code, after the window's positions


# ---------------------------------------------------------------- kernels


@njit(cache=True, fastmath=FAST, error_model="numpy")
def code_terms(idx, lo, hi, half, forget, rows, toks, weights):
    """The terms of the codes of windows idx: code b (left of the window of token idx[b]) and code B + b (right of
    it) are the sums of weights[k] * e(token toks[k]) over the k with rows[k] = b or B + b. lo, hi: (N,) int64 the
    bounds of each token's sentence. Returns the number of terms (rows, toks, weights sized by n_terms)."""
    B = idx.shape[0]
    n = 0
    for b in range(B):
        t = idx[b]
        w = 1.0
        for j in range(t - half - 1, lo[t] - 1, -1):
            n = add_term(rows, toks, weights, n, b, j, w)
            w *= forget
        w = 1.0
        for j in range(t + half + 1, hi[t]):
            n = add_term(rows, toks, weights, n, B + b, j, w)
            w *= forget
    return n


@njit(cache=True, fastmath=FAST, error_model="numpy")
def document_terms(idx, start, links, lo, hi, half, forget, rows, toks, weights):
    """The terms of the document codes of windows idx: token t's linked occurrences are links[start[t]:start[t+1]];
    code b (left) sums forget^(d-1) / m * e(token j - d), code B + b (right) the same of j + d, for each of t's m
    occurrences j and d = 1..half within j's sentence (lo, hi). Returns the number of terms."""
    B = idx.shape[0]
    n = 0
    for b in range(B):
        t = idx[b]
        s, e = start[t], start[t + 1]
        if e == s:
            continue
        share = 1.0 / (e - s)
        for q in range(s, e):
            j = links[q]
            w = share
            for k in range(j - 1, max(j - half, lo[j]) - 1, -1):
                n = add_term(rows, toks, weights, n, b, k, w)
                w *= forget
            w = share
            for k in range(j + 1, min(j + half + 1, hi[j])):
                n = add_term(rows, toks, weights, n, B + b, k, w)
                w *= forget
    return n


@njit(cache=True, fastmath=FAST, error_model="numpy")
def nearest_occurrences(keys, dlo, dhi, most, start, links):
    """For each token t with keys[t] >= 0, the `most` tokens nearest to it in its document [dlo[t], dhi[t]) with
    the same key (the nearer first, the left one first at equal distance), written to links from start[t];
    start[N] ends the last. Returns the number of links. Each document's tokens are sorted by (key, position) once,
    so a token's occurrences are a run of that order, taken outward from the token's own place in it."""
    N = keys.shape[0]
    order = np.empty(N, np.int64)  # each document's tokens by (key, position)
    place = np.empty(N, np.int64)  # a token's index in order
    run_start = np.empty(N, np.int64)  # where a token's key starts and ends in order
    run_end = np.empty(N, np.int64)
    t = 0
    while t < N:
        a, b = dlo[t], dhi[t]
        L = b - a
        by_key = np.empty(L, np.int64)
        for i in range(L):
            by_key[i] = (keys[a + i] + 1) * L + i  # unique, so the sort is deterministic
        sorted_ = np.argsort(by_key)
        for i in range(L):
            order[a + i] = a + sorted_[i]
        i = 0
        while i < L:
            j = i + 1
            while j < L and keys[order[a + j]] == keys[order[a + i]]:
                j += 1
            for r in range(i, j):
                place[order[a + r]] = a + r
                run_start[order[a + r]] = a + i
                run_end[order[a + r]] = a + j
            i = j
        t = b
    n = 0
    for t in range(N):
        start[t] = n
        if keys[t] < 0:
            continue
        left, right = place[t] - 1, place[t] + 1
        for _ in range(min(most, run_end[t] - run_start[t] - 1)):
            if right >= run_end[t] or (left >= run_start[t] and t - order[left] <= order[right] - t):
                links[n] = order[left]
                left -= 1
            else:
                links[n] = order[right]
                right += 1
            n += 1
    start[N] = n
    return n


@njit(cache=True, inline="always")
def add_term(rows, toks, weights, n, row, tok, weight):
    """Write term n of code_terms; returns n + 1."""
    rows[n] = row
    toks[n] = tok
    weights[n] = weight
    return n + 1


@njit(cache=True, fastmath=FAST, error_model="numpy")
def add_codes(rows, words, weights, n, table, width, codes):
    """codes[rows[k], :width] += weights[k] * table[words[k], :width] for k < n."""
    for k in range(n):
        r, u, a = rows[k], words[k], weights[k]
        for j in range(width):
            codes[r, j] += a * table[u, j]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def add_code_grads(rows, words, weights, n, dcodes, width, G):
    """The codes' backward: G[words[k], :width] += weights[k] * dcodes[rows[k], :width] for k < n (a word summed
    into several codes, or twice into one, gets every contribution)."""
    for k in range(n):
        r, u, a = rows[k], words[k], weights[k]
        for j in range(width):
            G[u, j] += a * dcodes[r, j]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def add_table_grads(ids, dX, stride, d, G):
    """G[ids[b, p]] += dX[b, p*stride : p*stride + d]: each position's row gradient, into a local table's rows."""
    B, P = ids.shape
    for b in range(B):
        for p in range(P):
            r = ids[b, p]
            o = p * stride
            for j in range(d):
                G[r, j] += dX[b, o + j]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def context_first_layer(words, lo, hi, half, forget, PL, PR, const, G):
    """G[t] = const + W_L L_t + W_R R_t for every token, by the recurrences over projected rows. words: (N,) int32
    each token's row in PL, PR (U, H0) = e(row) @ W_L, e(row) @ W_R; lo, hi: sentence bounds of each token, the
    tokens being whole sentences laid end to end; G: (N, H0)."""
    N, H = G.shape
    acc = np.zeros(H, G.dtype)
    t = 0
    while t < N:
        a, b = lo[t], hi[t]
        acc[:] = 0.0
        for i in range(a, b):
            j = i - half - 1
            if j >= a:
                for h in range(H):
                    acc[h] = forget * acc[h] + PL[words[j], h]
            for h in range(H):
                G[i, h] = const[h] + acc[h]
        acc[:] = 0.0
        for i in range(b - 1, a - 1, -1):
            j = i + half + 1
            if j < b:
                for h in range(H):
                    acc[h] = forget * acc[h] + PR[words[j], h]
            for h in range(H):
                G[i, h] += acc[h]
        t = b


# Parallel and cached: safe to load in any process once winner.core.runtime.init() has run (see runtime.py).
@njit(cache=True, parallel=True, fastmath=FAST, error_model="numpy")
def document_share(words, lo, hi, start, links, half, forget, PL, PR, const, sums, G):
    """G[t] = const + the document codes' share of token t's first layer, over projected rows PL, PR (U, H0) of the
    tokens' rows `words`: first sums[j] gets occurrence j's projected neighbours within its sentence, left then
    right (d = 1..half, weighed forget^(d-1)), then each token averages its links'. Only a token with links of its
    own is linked to (links join tokens of one key), so sums[j] is left unwritten for the others. sums and G may
    be longer than the N tokens (buffers kept between calls). Every row is written by one iteration, in a fixed
    order: the bits do not depend on the thread count."""
    N = words.shape[0]
    H = PL.shape[1]
    for j in prange(N):
        if start[j + 1] == start[j]:
            continue
        for h in range(H):
            sums[j, h] = 0.0
        w = 1.0
        for d in range(1, min(half, j - lo[j]) + 1):
            u = words[j - d]
            for h in range(H):
                sums[j, h] += w * PL[u, h]
            w *= forget
        w = 1.0
        for d in range(1, min(half, hi[j] - 1 - j) + 1):
            u = words[j + d]
            for h in range(H):
                sums[j, h] += w * PR[u, h]
            w *= forget
    for t in prange(N):
        for h in range(H):
            G[t, h] = const[h]
        m = start[t + 1] - start[t]
        if m > 0:
            share = 1.0 / m
            for q in range(start[t], start[t + 1]):
                j = links[q]
                for h in range(H):
                    G[t, h] += share * sums[j, h]


# ---------------------------------------------------------------- batches


def sentence_bounds(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi): the first token and one past the last of each token's sentence, sentences laid end to end."""
    lengths = np.asarray(lengths, np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    return np.repeat(offsets[:-1], lengths), np.repeat(offsets[1:], lengths)


class Links(NamedTuple):
    """Each token's linked occurrences for document codes: token t's are links[start[t]:start[t+1]] (token indices
    in the same stream)."""

    start: np.ndarray  # (N + 1,) int64
    links: np.ndarray  # int64

    def part(self, a: int, b: int) -> Links:
        """The links of tokens a..b-1 as a stream of their own (the part must hold whole documents)."""
        s, e = int(self.start[a]), int(self.start[b])
        return Links(self.start[a : b + 1] - s, self.links[s:e] - a)


def within_sentences(links: Links, alone: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> Links:
    """`links` with the tokens where `alone` (N,) bool is set keeping only their links inside their own sentence
    (lo, hi): those tokens see what they would if their sentence were a document by itself."""
    counts = np.diff(links.start)
    token = np.repeat(np.arange(len(counts)), counts)
    keep = ~alone[token] | ((links.links >= lo[token]) & (links.links < hi[token]))
    start = np.zeros_like(links.start)
    np.cumsum(np.bincount(token[keep], minlength=len(counts)), out=start[1:])
    return Links(start, links.links[keep])


def occurrence_links(keys: np.ndarray, doc_lengths: np.ndarray, most: int) -> Links:
    """The `most` nearest other tokens with the same key in each token's document (keys < 0: none); doc_lengths:
    tokens per document, documents laid end to end."""
    keys = np.ascontiguousarray(keys, np.int64)
    dlo, dhi = sentence_bounds(doc_lengths)
    start = np.empty(len(keys) + 1, np.int64)
    links = np.empty(len(keys) * most, np.int64)
    n = nearest_occurrences(keys, dlo, dhi, most, start, links)
    return Links(start, links[:n].copy())


class CodedBatch(NamedTuple):
    """Windows with their codes, ready for the ordinary kernels: `table` holds the rows the windows and codes read
    (U of them, then the 2B codes), `ids`/`feats` (B, 2w+3) index it."""

    table: np.ndarray  # (U + 2B, embed_dim)
    ids: np.ndarray  # (B, 2w+3) int32 local rows
    feats: np.ndarray  # (B, 2w+3) int32
    rows: np.ndarray  # the E rows (ids >= V: extra rows) of table[:U]
    terms: tuple  # (rows, words, weights, n) of code_terms, words as local rows


@dataclass(frozen=True)
class ContextCodes:
    """The codes of a model: window half-width, forgetting factor, the columns of a row summed, the feature id the
    code positions read, what they encode ("sentence" or "document") and, for document codes, how many occurrences
    a token links."""

    half: int
    forget: float
    word_dim: int
    feature: int
    mode: str = "sentence"
    occurrences: int = 0

    def batch(self, E: np.ndarray, extra: np.ndarray, ids: np.ndarray, feats: np.ndarray, idx: np.ndarray,
              words: np.ndarray, lo: np.ndarray, hi: np.ndarray, links: Links | None = None) -> CodedBatch:
        """The windows ids/feats (B, 2w+1) of tokens idx, whose sentences' tokens have rows `words` (N,) and bounds
        lo, hi (and, for document codes, `links`); a row id >= len(E) names extra[id - len(E)] (a word the
        vocabulary lacks)."""
        B = ids.shape[0]
        idx = np.ascontiguousarray(idx, np.int64)
        t_rows, toks, weights, n = self.terms(idx, lo, hi, links)
        uniq, inverse = np.unique(np.concatenate([ids.ravel(), words[toks[:n]]]), return_inverse=True)
        U = len(uniq)
        table = np.zeros((U + 2 * B, E.shape[1]), E.dtype)
        table[:U] = table_rows(E, extra, uniq)
        local_words = np.ascontiguousarray(inverse[ids.size :], np.int64)
        add_codes(t_rows, local_words, weights, n, table[:U], self.word_dim, table[U:])
        code_ids = U + np.arange(2 * B, dtype=np.int32).reshape(2, B).T
        local = np.concatenate([inverse[: ids.size].reshape(ids.shape), code_ids], axis=1).astype(np.int32)
        code_feats = np.full((B, CODE_POSITIONS), self.feature, np.int32)
        return CodedBatch(table, local, np.concatenate([feats, code_feats], axis=1).astype(np.int32), uniq,
                          (t_rows, local_words, weights, n))

    def terms(self, idx: np.ndarray, lo: np.ndarray, hi: np.ndarray, links: Links | None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """(rows, tokens, weights, n): the codes of windows idx as weighted sums of tokens' rows."""
        if self.mode == "document":
            if links is None:
                raise ValueError("document codes need each token's links (occurrence_links)")
            cap = int((links.start[idx + 1] - links.start[idx]).sum()) * 2 * self.half
            t_rows, toks, weights = np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap, np.float64)
            n = document_terms(idx, links.start, links.links, lo, hi, self.half, self.forget, t_rows, toks, weights)
        else:
            cap = int(np.maximum(idx - self.half - lo[idx], 0).sum() + np.maximum(hi[idx] - idx - self.half - 1,
                                                                               0).sum())
            t_rows, toks, weights = np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap, np.float64)
            n = code_terms(idx, lo, hi, self.half, self.forget, t_rows, toks, weights)
        return t_rows, toks, weights, n


def table_rows(E: np.ndarray, extra: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """E's rows `rows`, where an id >= len(E) names extra[id - len(E)]."""
    V = E.shape[0]
    if not len(extra):
        return E[rows]
    return np.concatenate([E[rows[rows < V]], extra[rows[rows >= V] - V]])


# ---------------------------------------------------------------- training


def coded_forward(model: WindowMLP, batch: CodedBatch, train: bool, seed: int, step: int) -> tuple[np.ndarray, object]:
    """The logits (B, n_out) of a coded batch, and backprop(dZ) -> SparseGrads of every parameter (the word rows'
    gradient includes the codes': every row they sum gets its a^(k-1)-scaled share)."""
    B = batch.ids.shape[0]
    scratch = model.scratch(B)
    params = layers.Params(batch.table, model.F, model.theta, model.sizes, model.weight_mask)
    net = model.kernel_net(train)
    layers.forward(batch.ids, batch.feats, params, net, seed, step, scratch)

    def backprop(dZ: np.ndarray) -> SparseGrads:
        c = model.config
        model.grad[:] = 0.0
        layers.backward(params, net, scratch, np.ascontiguousarray(dZ, model.dtype))
        dX = scratch.dacts[: B * c.n_in].reshape(B, c.n_in)
        stride = c.embed_dim + c.feature_dim
        G = np.zeros_like(batch.table)
        add_table_grads(batch.ids, dX, stride, c.embed_dim, G)
        U = len(batch.rows)
        t_rows, words, weights, n = batch.terms
        add_code_grads(t_rows, words, weights, n, G[U:], model_word_dim(model), G[:U])
        buf = model.buffers(B)
        nF = updates.scatter_rows(batch.feats, dX, c.embed_dim, c.feature_dim, stride, model.slot_F, buf["rows_F"],
                                  buf["G_F"], 0)
        updates.clear_slots(model.slot_F, buf["rows_F"], nF)
        return SparseGrads(model.grad, batch.rows.astype(np.int32), G[:U], buf["rows_F"][:nF], buf["G_F"][:nF])

    return scratch.Z[:B].copy(), backprop


def coded_loss(model: WindowMLP, batch: CodedBatch, targets: np.ndarray, train: bool, seed: int,
               step: int) -> tuple[float, SparseGrads]:
    """The mean softmax cross-entropy of a coded batch against targets (B,), and its gradients."""
    Z, backprop = coded_forward(model, batch, train, seed, step)
    dZ = np.empty_like(Z)
    scratch = model.scratch(len(Z))
    targets = np.ascontiguousarray(targets, np.int64)
    loss = layers.loss_grad(Z, targets, 1.0 / len(Z), dZ, model.kernel_net(train).loss_kind, scratch.lanes)
    return float(loss), backprop(dZ)


def model_word_dim(model: WindowMLP) -> int:
    """The columns of E a code sums: the word vector, without a character vector."""
    return int(getattr(model, "word_dim", model.config.embed_dim))


# ---------------------------------------------------------------- inference


def coded_log_proba(model: WindowMLP, codes: ContextCodes, ids: np.ndarray, feats: np.ndarray, lengths: np.ndarray,
                    extra: np.ndarray, method: str = "lookup", batch: int = 4096, links: Links | None = None,
                    documents: np.ndarray | None = None) -> np.ndarray:
    """(N, n_out) log-probabilities of every token of whole sentences (lengths), windows ids/feats (N, 2w+1), ids
    >= V naming rows of extra. Document codes also take each token's `links` and `documents`, the sentences per
    document (the parts cut at document ends). method "gemm": the codes built and multiplied (the straightforward
    path); anything else: the first layer by lookup, the codes' share over projected rows (context_first_layer,
    document_share)."""
    lengths = np.asarray(lengths, np.int64)
    out = np.empty((ids.shape[0], model.config.n_out), model.dtype)
    per_unit = np.ones(len(lengths), np.int64)  # sentences per unit a part holds whole: a sentence, or a document
    if codes.mode == "document":
        if links is None or documents is None:
            raise ValueError("document codes need the tokens' links and the sentences per document")
        per_unit = np.asarray(documents, np.int64)
        if per_unit.sum() != len(lengths) or (per_unit < 0).any():
            raise ValueError(f"documents hold {per_unit.sum()} sentences in all, expected {len(lengths)}")
    sentence_ends = np.cumsum(per_unit)
    ends = np.concatenate(([0], np.cumsum(lengths)))[sentence_ends]  # each unit's token end
    units = np.diff(ends, prepend=0)
    lookup_path = method != "gemm" and model.lookup_supported
    tables = call_tables(model, codes, ids, extra) if lookup_path and ids.size else None
    buffers: dict[str, np.ndarray] = {}  # the lookup path's per-part arrays, kept: fresh pages cost a fault each
    start, s = 0, 0
    while s < len(units):  # whole units, about `batch` tokens at a time
        e = max(s + 1, int(np.searchsorted(ends, ends[s] - units[s] + batch, side="right")))
        stop = int(ends[e - 1])
        part = (np.ascontiguousarray(ids[start:stop], np.int32), np.ascontiguousarray(feats[start:stop], np.int32),
                lengths[sentence_ends[s] - per_unit[s] : sentence_ends[e - 1]])
        part_links = links.part(start, stop) if codes.mode == "document" else None
        if stop == start:  # empty sentences only
            pass
        elif not lookup_path:
            _gemm_part(model, codes, *part, extra, part_links, out[start:stop])
        else:
            part_tables = (tables.part(start, stop) if tables is not None
                           else distinct_tables(model, codes, part[0], extra))
            _lookup_part(model, codes, part[1], part[2], part_tables, part_links, out[start:stop], buffers)
        start, s = stop, e
    return out


class LookupTables(NamedTuple):
    """What the lookup path reads: windows as rows `local` (N, 2w+1) of T (U, 2w+1, H0) (every row's first-layer
    share at each window position) and of PL, PR (U, H0) (its word vector's projection by the left and the right
    code's block of W0); C: the features' table, WT: theta with the upper layers transposed."""

    local: np.ndarray
    T: np.ndarray
    C: np.ndarray
    WT: np.ndarray
    PL: np.ndarray
    PR: np.ndarray

    def part(self, a: int, b: int) -> LookupTables:
        return self._replace(local=np.ascontiguousarray(self.local[a:b]))


def call_tables(model: WindowMLP, codes: ContextCodes, ids: np.ndarray, extra: np.ndarray) -> LookupTables | None:
    """The tables of a whole call: from the whole vocabulary's table when the model keeps one and no id names an
    extra row (its code projections computed once per model), else of the call's distinct rows when their table
    fits LOOKUP_TABLE_BYTES (None: too many, so each part builds its own). Every row's entries are the same bits
    whichever rows are built beside it (stable products), so the tags never depend on the path."""
    c = model.config
    vocab = model.vocabulary_table(ids.size) if int(ids.max()) < c.vocab_size else None
    if vocab is not None:
        wd = codes.word_dim
        left, right = code_blocks(model, codes)
        if "codes" not in vocab.derived:
            vocab.derived["codes"] = (lookup.stable_product(vocab.E[:, :wd], left[:wd]),
                                      lookup.stable_product(vocab.E[:, :wd], right[:wd]))
        return LookupTables(np.ascontiguousarray(ids, np.int32), vocab.T, vocab.C, vocab.WT, *vocab.derived["codes"])
    return distinct_tables(model, codes, ids, extra, LOOKUP_TABLE_BYTES)


def distinct_tables(model: WindowMLP, codes: ContextCodes, ids: np.ndarray, extra: np.ndarray,
                    max_bytes: int | None = None) -> LookupTables | None:
    """The tables of the distinct rows of windows ids (ids >= V naming rows of extra); None if their first-layer
    table would pass `max_bytes`."""
    c = model.config
    P, H0, wd = ids.shape[1], c.hidden[0], codes.word_dim
    uniq, inverse = np.unique(ids, return_inverse=True)
    if max_bytes is not None and len(uniq) * P * H0 * model.dtype.itemsize > max_bytes:
        return None
    rows = np.ascontiguousarray(table_rows(model.E, extra, uniq), model.dtype)
    T = np.empty((len(uniq), P, H0), model.dtype)
    C = np.empty((P, c.n_features, H0 if c.feature_dim else 0), model.dtype)
    lookup.first_layer_tables(rows, model.F, model.params["W0"], None, T, C)
    left, right = code_blocks(model, codes)
    return LookupTables(inverse.reshape(ids.shape).astype(np.int32), T, C, model._transposed_theta(),
                        lookup.stable_product(rows[:, :wd], left[:wd]), lookup.stable_product(rows[:, :wd], right[:wd]))


def code_blocks(model: WindowMLP, codes: ContextCodes) -> tuple[np.ndarray, np.ndarray]:
    """The rows of W0 the left and the right code read (embedding columns, then feature columns)."""
    c = model.config
    P, stride = 2 * codes.half + 1, c.embed_dim + c.feature_dim
    W0 = model.params["W0"]
    return W0[P * stride : (P + 1) * stride], W0[(P + 1) * stride : (P + 2) * stride]


def _gemm_part(model: WindowMLP, codes: ContextCodes, ids: np.ndarray, feats: np.ndarray, lengths: np.ndarray,
               extra: np.ndarray, links: Links | None, out: np.ndarray) -> None:
    lo, hi = sentence_bounds(lengths)
    n = ids.shape[0]
    coded = codes.batch(model.E, extra, ids, feats, np.arange(n), ids[:, codes.half], lo, hi, links)
    params = layers.Params(coded.table, model.F, model.theta, model.sizes, model.weight_mask)
    scratch = model.scratch(min(n, 1024))
    layers.predict_batches(coded.ids, coded.feats, params, model.kernel_net(False), min(n, 1024), scratch, out)
    layers.log_softmax_rows(out, out)


def _lookup_part(model: WindowMLP, codes: ContextCodes, feats: np.ndarray, lengths: np.ndarray, tables: LookupTables,
                 links: Links | None, out: np.ndarray, buffers: dict[str, np.ndarray]) -> None:
    c = model.config
    H0, d = c.hidden[0], c.embed_dim
    left, right = code_blocks(model, codes)
    const = (model.F[codes.feature] @ left[d:] + model.F[codes.feature] @ right[d:]).astype(model.dtype)
    lo, hi = sentence_bounds(lengths)
    n = len(feats)
    G = _buffer(buffers, "G", n, H0, model.dtype)
    centre = np.ascontiguousarray(tables.local[:, codes.half])
    if codes.mode == "document":
        sums = _buffer(buffers, "sums", n, H0, model.dtype)
        document_share(centre, lo, hi, links.start, links.links, codes.half, codes.forget, tables.PL, tables.PR,
                       const, sums, G)
    else:
        context_first_layer(centre, lo, hi, codes.half, model.dtype.type(codes.forget), tables.PL, tables.PR, const,
                            G)
    lookup.lookup_logits(tables.local, feats, tables.T, tables.C, model.theta, tables.WT, model.sizes,
                         ACTIVATIONS[c.activation], True, out, G)


def _buffer(buffers: dict[str, np.ndarray], name: str, rows: int, cols: int, dtype: np.dtype) -> np.ndarray:
    """The first `rows` rows of buffers[name], grown when a part needs more."""
    kept = buffers.get(name)
    if kept is None or kept.shape[0] < rows:
        kept = buffers[name] = np.empty((rows, cols), dtype)
    return kept[:rows]
