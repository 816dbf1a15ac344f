"""NER workflows behind the CLI: train a tagger, evaluate it (tagging is winner.heads.tagging).

Each function is one library call that `winner ner ...` and `winner run` both use.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from winner.core.atomic import save_figure, write_text_atomic
from winner.core.chars import CharOptimizer, CharWindowMLP
from winner.core.console import console
from winner.core.context import CODE_POSITIONS
from winner.core.loop import FitResult, LoopSettings, LoopState, Metric, TrainData, WindowTraining, fit, write_json
from winner.core.mlp import MLPConfig, WindowMLP
from winner.core.optim import Optimizer
from winner.data.conll import (
    Sentence,
    append_column,
    convert_tags,
    detect_scheme,
    format_conll,
    read_text,
)
from winner.data.hub import load_sentences
from winner.data.labelled import embedding_table, replace_rare_with_unk, resolve_data
from winner.data.vocab import Vocab
from winner.data.windows import CASINGS
from winner.errors import WinnerError
from winner.heads.characters import CharSpec, attach_words, build_alphabet
from winner.heads.characters import gradcheck_cases as char_gradcheck_cases
from winner.heads.context_training import ContextTraining
from winner.heads.context_training import gradcheck_cases as context_gradcheck_cases
from winner.heads.crf import Transitions
from winner.heads.metrics import entity_counts, entity_scores, token_accuracy
from winner.heads.model_io import resolve_model_dir
from winner.heads.sentence_training import SentenceTraining
from winner.heads.sentence_training import gradcheck_cases as sentence_gradcheck_cases
from winner.heads.settings import NERSettings
from winner.heads.tagger import Tagger, TaggerSpec


def build_tagger(settings: NERSettings, train: list[Sentence]) -> tuple[Tagger, str, dict, np.ndarray]:
    """A freshly initialised tagger for `train` (vocabulary, tag set, embeddings), the training data's tag
    scheme, embedding stats, and which vocabulary words have a pretrained vector."""
    source_scheme = detect_scheme([s.tags for s in train])
    tags = sorted({t for s in train for t in convert_tags(s.tags, source_scheme, settings.scheme)},
                  key=lambda t: (t != "O", t[2:], t))
    if tags in (["O"], []):
        raise WinnerError(f"{settings.train or 'the training data'}: no entities in {len(train):,} sentences; a "
                          "tagger needs at least one tagged entity")
    rng = np.random.default_rng(settings.seed)
    table, words, stats, has_vector = embedding_table(settings.embeddings, settings.max_pretrained, train, rng,
                                                      settings.quiet, settings.trust_pickle)
    word_dim = table.shape[1] if table is not None else settings.random_embed_dim
    chars = CharSpec(build_alphabet([s.tokens for s in train]), settings.char_dim, settings.char_filters,
                     settings.char_width) if settings.char_filters else None
    config = MLPConfig(
        n_positions=2 * settings.window + 1 + (CODE_POSITIONS if settings.context_code != "none" else 0),
        vocab_size=len(words), embed_dim=word_dim + settings.char_filters,
        n_out=len(tags),
        hidden=settings.hidden_sizes(), n_features=len(CASINGS), feature_dim=settings.casing_dim,
        activation=settings.activation, loss="softmax", dropout_input=settings.dropout,
        dropout_hidden=settings.hidden_dropout)
    if chars is None:
        model = WindowMLP(config, seed=settings.seed, E=table)
    else:
        model = CharWindowMLP.with_word_table(config, chars.config(), settings.seed, table)
    spec = TaggerSpec(settings.window, tags, settings.scheme, source_scheme, settings.decode,
                      asdict(chars) if chars else None, consistency=settings.consistency)
    if settings.context_code == "sentence":
        spec.context = {"mode": "sentence", "forget": settings.forget}
    elif settings.context_code == "document":
        spec.context = {"mode": "document", "forget": settings.forget, "occurrences": settings.occurrences}
    if settings.loss == "sentence":
        crf = Transitions.zeros(len(tags))
        spec.transitions, spec.start = crf.A.tolist(), crf.start.tolist()
    tagger = Tagger(model, Vocab(words), spec)
    if chars is not None:
        attach_words(model, chars, tagger.words)
    return tagger, source_scheme, stats, has_vector


def gradcheck_cases() -> list:
    """The tagger's own parameters beyond the core's: the character CNN, the sentence-level loss, context codes."""
    return char_gradcheck_cases() + sentence_gradcheck_cases() + context_gradcheck_cases()


def train_tagger(settings: NERSettings) -> dict:
    """Train, early-stop on dev entity F1, keep the best model in OUT/model; returns the summary."""
    t_all = time.perf_counter()
    out = Path(settings.out)
    train, dev, train_src, dev_src = resolve_data(settings.train, settings.dev)
    tagger, source_scheme, emb_stats, has_vector = build_tagger(settings, train)  # refusals before any output
    console.print(f"train: {train_src} ({len(train):,} sentences, {sum(len(s.tokens) for s in train):,} tokens)")
    console.print(f"dev:   {dev_src} ({len(dev):,} sentences)")
    ids, feats = tagger.featurize([s.tokens for s in train])
    ids = replace_rare_with_unk(ids, tagger.words, has_vector, settings.unk_replace,
                                np.random.default_rng([settings.seed, 1]))
    data = TrainData(ids, feats, tagger.target_ids([s.tags for s in train], source_scheme))
    optimizer_type = CharOptimizer if tagger.chars else Optimizer
    optimizer = optimizer_type(settings.optimizer, lr=settings.lr, embed_lr_scale=settings.embed_lr_scale,
                               l2=settings.l2, l1=settings.l1, average_windows=settings.average * len(data.targets))
    dev_tokens = [s.tokens for s in dev]
    dev_documents = [s.doc for s in dev]
    dev_gold = [convert_tags(s.tags, detect_scheme([s.tags for s in dev]), "iob2") for s in dev]

    def evaluate() -> float:
        if tagger.chars:  # training steps leave the vocabulary's character columns stale
            tagger.model.fill_vocabulary()
        return entity_scores(dev_gold, tagger.predict(dev_tokens, scheme="iob2",
                                                          documents=dev_documents))["f1"]

    meta = {"settings": asdict(settings), "train_source": train_src, "dev_source": dev_src,
            "embedding_stats": emb_stats}

    def save_best(state: LoopState) -> None:
        tagger.save(out / "model", {**meta, "epoch": state.best_epoch, "dev_f1": state.best})

    console.print(f"model: window {2 * settings.window + 1}, {len(tagger.words):,} words x "
                  f"{tagger.model.config.embed_dim}, hidden {tagger.model.config.hidden}, "
                  f"{len(tagger.spec.tags)} tags ({settings.scheme}), {tagger.model.n_parameters():,} parameters, "
                  f"{settings.loss}-level loss" + (f", {settings.context_code} context codes (forget "
                                                   f"{settings.forget})" if tagger.context else "")
                  + (", one entity type per name in a document" if settings.consistency == "document" else ""))
    loop = LoopSettings.of(settings)
    lengths = np.fromiter((len(s.tokens) for s in train), np.int64, count=len(train))
    if tagger.context is not None:
        links = tagger.links([s.tokens for s in train], [s.doc for s in train])
        trainee = ContextTraining(tagger.model, optimizer, data, evaluate, Metric("dev F1"), save_best,
                                  settings.batch_size, settings.seed, lengths=lengths, codes=tagger.context,
                                  links=links, alone=settings.alone)
    elif tagger.crf is not None:
        trainee = SentenceTraining(tagger.model, optimizer, data, evaluate, Metric("dev F1"), save_best,
                                   settings.batch_size, settings.seed, lengths=lengths, crf=tagger.crf)
    else:
        trainee = WindowTraining(tagger.model, optimizer, data, evaluate, Metric("dev F1"), save_best,
                                 settings.batch_size, settings.seed)
    result = fit(trainee, out, loop)
    summary = _summary(result, settings, out, time.perf_counter() - t_all, len(data.targets))
    write_json(out / "summary.json", summary)
    console.print(
        f"done: best dev F1 {summary['best_dev_f1']:.4f} at epoch {summary['best_epoch']} of "
        f"{summary['epochs_run']}; {summary['train_seconds']:.0f}s training "
        f"(+{summary['compile_seconds']:.1f}s JIT), {summary['wall_seconds']:.0f}s in all; model in {out / 'model'}")
    return summary


def _summary(result: FitResult, settings: NERSettings, out: Path, wall: float, n_windows: int) -> dict:
    return {"best_dev_f1": result.state.best, **result.summary(settings.seed, out / "model"), "wall_seconds": wall,
            "train_windows": n_windows}


# ---------------------------------------------------------------- evaluate


def evaluate_tagger(model_dir: str | Path, data: str, plot: str | Path | None = None,
                    predictions: str | Path | None = None, split: str = "test", consistency: str | None = None
                    ) -> dict:
    """Entity-level scores of a saved tagger on a CoNLL file or hub split (seqeval, conlleval mode), with entity
    counts per type, token accuracy and the macro average; `predictions` also writes the data with the
    predicted tags as a last column (the file conlleval reads). `consistency` replaces the model's own."""
    sentences = load_sentences(data, split=split)  # first: a bad --data fails before the model's kernels load
    tagger = Tagger.load(resolve_model_dir(model_dir), consistency)
    scheme = detect_scheme([s.tags for s in sentences])
    gold = [convert_tags(s.tags, scheme, "iob2") for s in sentences]
    pred = tagger.predict([s.tokens for s in sentences], scheme="iob2", documents=[s.doc for s in sentences])
    scores = entity_scores(gold, pred)
    counts = entity_counts(gold, pred)
    for kind, v in scores["per_type"].items():
        v.update(counts.get(kind, {"gold": 0, "predicted": 0, "correct": 0}))
    per_type = scores["per_type"].values()
    scores["macro"] = {k: sum(v[k] for v in per_type) / max(len(per_type), 1) for k in ("precision", "recall", "f1")}
    pred_in_scheme = [convert_tags(p, "iob2", scheme) for p in pred]
    scores["token_accuracy"] = token_accuracy([s.tags for s in sentences], pred_in_scheme)  # as conlleval compares
    scores["sentences"] = len(sentences)
    scores["tokens"] = sum(len(g) for g in gold)
    if plot:
        plot_confusion(gold, pred, Path(plot))
    if predictions:
        text = read_text(data) if Path(data).is_file() else format_conll(sentences)
        write_text_atomic(predictions, append_column(text, pred_in_scheme))
    return scores


def plot_confusion(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], path: Path) -> None:
    """Token-level confusion of entity types (B-/I- merged), rows gold, columns predicted, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def kind(t: str) -> str:
        return "O" if t == "O" else t[2:]

    g = [kind(t) for s in gold for t in s]
    p = [kind(t) for s in pred for t in s]
    labels = sorted(set(g) | set(p), key=lambda t: (t == "O", t))
    index = {t: i for i, t in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(m, ([index[t] for t in g], [index[t] for t in p]), 1)
    fig, ax = plt.subplots(figsize=(1.1 * len(labels) + 2, 1.1 * len(labels) + 1.5))
    ax.imshow(m / np.maximum(m.sum(axis=1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{m[i, j]:,}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="gold", title="token confusion (row-normalised colour)")
    fig.tight_layout()
    save_figure(fig, path)


def format_report(scores: dict) -> str:
    """conlleval-style table: per-type and overall precision/recall/F1 (percent) with entity counts, the macro
    average and token accuracy."""
    def row(name: str, v: dict, counts: tuple[int, int, int]) -> str:
        return (f"{name:<8} {100 * v['precision']:9.2f} {100 * v['recall']:9.2f} {100 * v['f1']:9.2f} "
                f"{counts[0]:7d} {counts[1]:9d} {counts[2]:7d}")

    lines = [f"{'type':<8} {'precision':>9} {'recall':>9} {'f1':>9} {'gold':>7} {'predicted':>9} {'correct':>7}"]
    per_type = sorted(scores["per_type"].items())
    for t, v in per_type:
        lines.append(row(t, v, (v["support"], v.get("predicted", 0), v.get("correct", 0))))
    totals = tuple(sum(v.get(k, 0) for _, v in per_type) for k in ("support", "predicted", "correct"))
    lines.append(row("overall", scores, totals))
    if "macro" in scores:
        m = scores["macro"]
        lines.append(f"{'macro':<8} {100 * m['precision']:9.2f} {100 * m['recall']:9.2f} {100 * m['f1']:9.2f}")
    if "token_accuracy" in scores:
        lines.append(f"token accuracy {100 * scores['token_accuracy']:.2f}% on {scores['tokens']:,} tokens")
    return "\n".join(lines)
