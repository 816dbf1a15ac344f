"""The Python API: `winner.load(path)` gives the right object for a saved model, `winner.train(settings)` trains.

    nlp = winner.load("runs/conll")            # a run directory or its model/
    doc = nlp("John Smith flew to Paris.")     # tokens and entities with character offsets
    for e in doc.ents: print(e.text, e.label, e.start_char, e.end_char, e.confidence)

Raw text is always a `str`; a pre-tokenised sentence is a list of tokens. Nothing here compiles a kernel until
a model is applied, and `import winner` does not import this module until one of its names is used.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from winner.data.corpus import tokenize as corpus_tokenize
from winner.data.text import tokenize_with_offsets
from winner.errors import ModelFormatError, WinnerError
from winner.heads.docs import Doc, TextInput, pretokenized, tag_docs
from winner.heads.lm import LanguageModel, render
from winner.heads.model_io import resolve_model_dir
from winner.heads.ner import evaluate_tagger
from winner.heads.registry import HEADS
from winner.heads.scorer import Scorer, rank_windows
from winner.heads.settings import Settings
from winner.heads.tagger import Tagger, checked_consistency


class Loaded:
    """A saved model and the directory it came from; `model` is the head's own object (Tagger, Scorer,
    LanguageModel) for anything the wrapper does not cover."""

    def __init__(self, model: Tagger | Scorer | LanguageModel, path: Path):
        self.model = model
        self.path = path


class NER(Loaded):
    """A trained NER tagger: `nlp(text)` -> Doc, `nlp.pipe(texts)` -> Docs, `nlp.evaluate(path)` -> scores."""

    model: Tagger

    @property
    def labels(self) -> list[str]:
        """The entity types the model predicts."""
        return sorted({t[2:] for t in self.model.spec.tags if t != "O"})

    @property
    def consistency(self) -> str:
        """The vote after decoding: "document" gives the same words one entity type within a text, "none" does
        not. Settable, to tag or evaluate a model without retraining it: `nlp.consistency = "document"`."""
        return self.model.spec.consistency

    @consistency.setter
    def consistency(self, value: str) -> None:
        self.model.spec.consistency = checked_consistency(value)

    def __call__(self, text: TextInput) -> Doc:
        """Tag raw text (a str: tokenised, split into sentences) or one pre-tokenised sentence (a list of str)."""
        return next(tag_docs(self.model, [text]))

    def pipe(self, texts: Iterable[TextInput], batch_size: int = 64) -> Iterator[Doc]:
        """Tag many texts lazily, `batch_size` texts per model call; Docs come back in input order."""
        return tag_docs(self.model, texts, batch_size)

    def evaluate(self, path: str | Path, predictions: str | Path | None = None) -> dict:
        """Entity precision / recall / F1 (overall, per type with counts, macro) and token accuracy on a CoNLL
        file or dataset; `predictions` also writes the data with the predicted tags as a last column."""
        return evaluate_tagger(self.path, str(path), predictions=predictions, consistency=self.consistency)

    def __repr__(self) -> str:
        return f"NER({str(self.path)!r}, labels={self.labels})"


class WindowScorer(Loaded):
    """A trained max-margin window scorer: `scorer.rank(text)` lists the windows of a text best first."""

    model: Scorer

    @property
    def label(self) -> str:
        return self.model.spec.label

    @property
    def threshold(self) -> float:
        return self.model.spec.threshold

    def rank(self, text: TextInput, top: int | None = None) -> list[dict]:
        """Every token's window of `text`, best score first: {centre, start_char, end_char, score, window,
        sentence, position}; a score at or above `threshold` means the centre word is a `label` entity."""
        raw, tokens = (text, tokenize_with_offsets(text)) if isinstance(text, str) else pretokenized(text)
        if not tokens:
            return []
        records = rank_windows(self.model, [[t.text for t in tokens]])
        for r in records:
            t = tokens[r["position"]]
            r["start_char"], r["end_char"] = t.start, t.end
        return records[:top] if top is not None else records

    def __repr__(self) -> str:
        return f"WindowScorer({str(self.path)!r}, label={self.label!r})"


class LM(Loaded):
    """A trained fixed-window language model: `lm.generate(prompt, n)`, `lm.perplexity(text)`."""

    model: LanguageModel

    def tokenize(self, text: str) -> list[str]:
        """Text as the model reads it (the training corpus's tokenisation; its own multi-word forms kept)."""
        return corpus_tokenize(text, known=self.model.vocab.stoi)

    def generate(self, prompt: str = "", n: int = 50, seed: int = 0, temperature: float = 1.0, top_k: int = 0) -> str:
        """The prompt continued by `n` words; the same seed gives the same text, temperature 0 is greedy."""
        tokens = self.tokenize(prompt)
        return render(tokens + self.model.generate(tokens, n, temperature, top_k, seed))

    def perplexity(self, text: str) -> float:
        """Perplexity of the model on `text` (full softmax, every token counted, the first words see padding)."""
        ids = self.model.ids(self.tokenize(text))
        if len(ids) == 0:
            raise WinnerError("no tokens to score: the text is empty")
        return self.model.perplexity(ids)

    def __repr__(self) -> str:
        return f"LM({str(self.path)!r}, vocabulary={len(self.model.vocab):,}, context={self.model.context})"


_LOADERS = {"tagger": (Tagger, NER), "scorer": (Scorer, WindowScorer), "lm": (LanguageModel, LM)}


def load(path: str | Path) -> NER | WindowScorer | LM:
    """The model saved in `path` (a run directory or its model/), wrapped for its head: NER, WindowScorer or LM."""
    model_dir = resolve_model_dir(path)
    try:
        fmt = json.loads((model_dir / "config.json").read_text(encoding="utf-8")).get("format", "")
    except json.JSONDecodeError as e:
        raise ModelFormatError(f"{model_dir / 'config.json'}:{e.lineno}: invalid json ({e.msg})") from e
    kind = fmt.removeprefix("winner.").rpartition(".")[0]
    if kind not in _LOADERS:
        raise ModelFormatError(f"{model_dir}: unknown model format {fmt!r} (expected one of "
                               f"{', '.join(f'winner.{k}.v1' for k in _LOADERS)})")
    head_class, wrapper = _LOADERS[kind]
    return wrapper(head_class.load(model_dir), model_dir)


def train(settings: Settings) -> dict:
    """Train the head that `settings` belongs to (NERSettings, ScoreSettings, LMSettings) exactly as
    `winner NAME train` does; the model goes to settings.out/model and the run's summary is returned."""
    entry = next((h for h in HEADS if type(settings) is h.settings), None)
    if entry is None:
        raise TypeError(f"expected NERSettings, ScoreSettings or LMSettings, got {type(settings).__name__}")
    return entry.train(settings)


__all__: Sequence[str] = ("NER", "LM", "WindowScorer", "Doc", "load", "train")
