"""Label consistency across a document: every mention of the same words gets one entity type.

A document names the same entity many times, and a window tagger decides each mention on its own: "Jordan" may
come out PER in one sentence and LOC in the next. After decoding, `vote_types` groups a document's predicted
entities by their words (their lookup forms: lowercase, digits as 0) and gives every entity of a group the type
its mentions voted for, each vote weighed by the model's mean probability of the mention's tags (Krishnan &
Manning 2006, "An Effective Two-Stage Model for Exploiting Non-Local Dependencies in Named Entity Recognition",
https://aclanthology.org/P06-1141/, as a vote). Only types change: where entities start and end stays as decoded,
so the tags stay well formed in the model's scheme.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from numba import njit

from winner.core.fastmath import FAST

PREFIXES = "OBIES"  # prefix codes: O = 0, B = 1, I = 2, E = 3, S = 4 (iob1, iob2 and iobes tags)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def entity_spans(path, offsets, prefix, kind, starts, ends):
    """The entities of tag ids `path` (sentences at offsets) as conll.tags_to_spans reads them: B-/S- or a change
    of type starts an entity, I-/E- of the open type continue it, E-/S- close it, an I-/E- that continues nothing
    starts one. Writes starts/ends (token indices, end exclusive); returns how many."""
    n = 0
    for k in range(offsets.shape[0] - 1):
        open_kind = -1
        for t in range(offsets[k], offsets[k + 1]):
            p, c = prefix[path[t]], kind[path[t]]
            if p == 0:
                open_kind = -1
                continue
            if p == 1 or p == 4 or c != open_kind:
                starts[n] = t
                n += 1
                open_kind = c
            ends[n - 1] = t + 1
            if p == 3 or p == 4:
                open_kind = -1
    return n


def tag_codes(tags: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(prefix, kind, kinds): each tag's prefix code and entity type index (-1 for O), and the types."""
    kinds = sorted({t[2:] for t in tags if t != "O"})
    prefix = np.array([0 if t == "O" else PREFIXES.index(t[0]) for t in tags], np.int64)
    kind = np.array([-1 if t == "O" else kinds.index(t[2:]) for t in tags], np.int64)
    return prefix, kind, kinds


def retype_table(tags: Sequence[str]) -> np.ndarray:
    """(T, K) int: the id of tag t with its type replaced by type k (the same prefix), or t if the tag set lacks it."""
    _, kind, kinds = tag_codes(tags)
    index = {t: i for i, t in enumerate(tags)}
    table = np.tile(np.arange(len(tags))[:, None], (1, len(kinds)))
    for i, t in enumerate(tags):
        if kind[i] >= 0:
            for k, name in enumerate(kinds):
                table[i, k] = index.get(f"{t[:2]}{name}", i)
    return table


def vote_types(path: np.ndarray, offsets: np.ndarray, sentences_per_document: np.ndarray, keys: np.ndarray,
               logp: np.ndarray, tags: Sequence[str]) -> np.ndarray:
    """`path` (tag ids of sentences laid end to end at offsets, in the tag set `tags`) with every entity retyped to
    its group's vote: a group is one document's entities with the same word `keys` (N,)."""
    prefix, kind, kinds = tag_codes(tags)
    if not kinds or not len(path):
        return path
    starts, ends = np.empty(len(path), np.int64), np.empty(len(path), np.int64)
    n = entity_spans(path, offsets, prefix, kind, starts, ends)
    starts, ends = starts[:n], ends[:n]
    doc_ends = offsets[np.cumsum(sentences_per_document)]
    documents = np.searchsorted(doc_ends, starts, side="right")
    cumulative = np.concatenate(([0.0], np.cumsum(np.exp(logp[np.arange(len(path)), path].astype(np.float64)))))
    weights = ((cumulative[ends] - cumulative[starts]) / (ends - starts)).tolist()  # each mention's mean probability
    votes: dict[tuple, np.ndarray] = defaultdict(lambda: np.zeros(len(kinds)))
    groups = []
    for a, b, d, w in zip(starts.tolist(), ends.tolist(), documents.tolist(), weights, strict=True):
        group = (d, *keys[a:b].tolist())
        votes[group][kind[path[a]]] += w
        groups.append(group)
    table = retype_table(tags)
    out = path.copy()
    for a, b, group in zip(starts.tolist(), ends.tolist(), groups, strict=True):
        out[a:b] = table[path[a:b], int(np.argmax(votes[group]))]
    return out
