"""Pretrained word vectors: load word2vec / GloVe files, train the default word2vec, align to a vocabulary.

The only module that imports gensim, and only inside functions, so `winner --help` stays instant.
Text formats are slow to parse (the shared GloVe 6B 100d file: ~26 s), so parsed vectors (and the default
word2vec vectors) are cached under the cache directory as plain arrays and json (vectors.npy, words.json,
meta.json) and memory-mapped on later loads. Loading never unpickles: gensim's native format (`.kv`,
`.model`, or any file that is a pickle) would run code hidden in the file, so it is refused unless the
caller passes trust_pickle=True (`--trust-pickle`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console

from winner.core.atomic import write_dir_atomic
from winner.data.corpus import brown_sentences
from winner.data.resources import brown_stream_path, cache_dir, data_dir
from winner.data.windows import normalise
from winner.errors import WinnerError

if TYPE_CHECKING:
    from gensim.models import KeyedVectors

DEFAULT_EMBEDDINGS = "default"  # the GloVe subset shipped in data/glove (shipped_glove)
SHIPPED_GLOVE_DIR = "glove"  # under data/
BROWN_EMBEDDINGS = "brown-word2vec"  # word2vec trained on the shipped Brown text (default_vectors)
NATIVE_SUFFIXES = (".kv", ".model")
# word2vec settings of the default vectors; part of their cache key.
DEFAULT_WORD2VEC = {
    "sg": 1,
    "vector_size": 50,
    "window": 5,
    "min_count": 2,
    "epochs": 5,
    "workers": 1,
    "seed": 0,
}

# v2: npy + json. v1 entries were gensim pickles (vectors.kv) and are never read: their key differs.
_CACHE_FORMAT = "winner.vectors.v2"
_DOWNLOADER_NAME = re.compile(r"[A-Za-z0-9][\w.-]*")
# Pickles of protocol 2+ open with the PROTO opcode 0x80; those of protocol 0 and 1 holding an object
# (everything gensim saves) with a GLOBAL opcode: `c<module>\n<name>\n`, which no vectors file starts with.
# Other pickles are only read as word2vec / GloVe text, which fails: no sniffing miss can run code.
_PICKLE_GLOBAL = re.compile(rb"c[\w.]+\n[\w.]+\n")
FASTTEXT_MAGIC = (793712314).to_bytes(4, "little")  # the first int32 of a fastText .bin file
FORMATS_TRIED = ("formats read: word2vec text or binary, GloVe text, fastText .bin (each gzipped or not), gensim "
                 "native .kv/.model with --trust-pickle")


# ---------------------------------------------------------------------------------------------- loading


def load_keyed_vectors(spec: str, progress: bool = True, trust_pickle: bool = False) -> KeyedVectors:
    """Vectors from a file, or a gensim-downloader name already in the local gensim-data folder.

    Files: word2vec text (with a `count dim` header) or binary, GloVe text (no header), or gzip of any of
    these. Nothing is ever downloaded. Files are parsed once and then read from the cache, keyed by
    absolute path, size and mtime; cached vectors are read-only memory maps. gensim's native format
    (`.kv` / `.model` or any pickle) is refused, since unpickling runs code, unless trust_pickle is set.
    """
    path = Path(spec).expanduser()
    if path.is_file():
        return _load_file(path, progress, trust_pickle)
    local = _downloader_file(spec)
    if local is not None:
        return _load_file(local, progress, trust_pickle)
    raise WinnerError(
        f"{spec!r} is neither a vectors file nor a gensim-downloader name available locally in "
        f"{_gensim_data_dir()} (nothing is downloaded)"
    )


def _gensim_data_dir() -> Path:
    """Where gensim's downloader keeps its data: $GENSIM_DATA_DIR or ~/gensim-data."""
    env = os.environ.get("GENSIM_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / "gensim-data"


def _downloader_file(name: str) -> Path | None:
    """The data file of a downloader model (`NAME/NAME.gz` and the like) if it is already on disk.

    We read the file ourselves rather than through gensim.downloader.load, which would fetch what
    is missing and run the model's `__init__.py`.
    """
    if not _DOWNLOADER_NAME.fullmatch(name):
        return None
    folder = _gensim_data_dir() / name
    if not folder.is_dir():
        return None
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.name.startswith(name) and p.suffix != ".py"
    )
    return files[0] if files else None


def _load_file(path: Path, progress: bool, trust_pickle: bool) -> KeyedVectors:
    kind = _sniff_format(path)
    if kind == "fasttext-bin":  # not cached: the cache keeps whole-word vectors, fastText's subwords would be lost
        return _load_fasttext(path, progress)
    if kind == "native":
        if not trust_pickle:
            raise WinnerError(_pickle_refusal(path))
        return _load_native(path)
    stat = path.stat()
    resolved = str(path.resolve())
    path_key = hashlib.sha1(resolved.encode()).hexdigest()[:16]
    state_key = hashlib.sha1(f"{_CACHE_FORMAT}|{stat.st_size}|{stat.st_mtime_ns}|{kind}".encode()).hexdigest()
    entry = cache_dir() / "vectors" / f"{path_key}-{state_key[:16]}"
    cached = _read_cached(entry)
    if cached is not None:
        return cached
    kv = _parse(path, kind, progress)
    _store(entry, kv, {"source": resolved, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "kind": kind})
    for stale in entry.parent.glob(f"{path_key}-*"):  # older versions of the same file, or of the cache
        if stale != entry and stale.is_dir():
            _remove_tree(stale)
    return kv


def _parse(path: Path, kind: str, progress: bool) -> KeyedVectors:
    """Parse a word2vec or GloVe file (never a pickle: load_word2vec_format only reads numbers and words)."""
    from gensim.models import KeyedVectors

    with _status(f"Parsing {kind} vectors from {path} (cached for next time)", progress):
        if kind != "word2vec-binary":
            _check_text_rows(path, skip=1 if kind == "word2vec-text" else 0)
        try:
            kv = KeyedVectors.load_word2vec_format(
                str(path), binary=kind == "word2vec-binary", no_header=kind == "glove-text"
            )
        except (ValueError, UnicodeDecodeError, EOFError, OSError, IndexError) as e:
            raise WinnerError(f"{path}: could not read it as {kind} vectors ({_first_line(e)}); "
                              f"{FORMATS_TRIED}") from None
    if not _all_finite(kv.vectors):
        raise WinnerError(f"{path}: some of its vectors hold NaN or infinity")
    return kv


def _check_text_rows(path: Path, skip: int) -> None:
    """gensim reads a text row with too few numbers by repeating them and a repeated word as a None word:
    refuse both, naming the line."""
    seen: set[bytes] = set()
    width = None
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    with (gzip.open if gzipped else open)(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if lineno <= skip or not fields:
                continue
            width = width or len(fields)
            if len(fields) != width:
                raise WinnerError(f"{path}:{lineno}: expected a word and {width - 1} numbers, found "
                                  f"{len(fields) - 1} fields after the word")
            if fields[0] in seen:
                raise WinnerError(f"{path}:{lineno}: the word {fields[0].decode('utf-8', 'replace')!r} has a "
                                  "vector already; each word may appear once")
            seen.add(fields[0])


def _load_fasttext(path: Path, progress: bool) -> KeyedVectors:
    """A fastText .bin file's vectors with their subword n-grams (words outside the table get vectors too)."""
    from gensim.models.fasttext import load_facebook_vectors

    with _status(f"Reading fastText vectors from {path}", progress):
        try:
            kv = load_facebook_vectors(str(path))
        except Exception as e:  # gensim raises many kinds on a damaged file; all mean "not fastText .bin"
            raise WinnerError(f"{path}: could not read it as fastText .bin ({_first_line(e)}); "
                              f"{FORMATS_TRIED}") from None
    if not _all_finite(kv.vectors):
        raise WinnerError(f"{path}: some of its vectors hold NaN or infinity")
    return kv


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def _sniff_format(path: Path) -> str:
    """native | word2vec-binary | word2vec-text | glove-text, from the suffix and the first bytes."""
    if path.suffix.lower() in NATIVE_SUFFIXES:
        return "native"
    with path.open("rb") as f:
        head = f.read(4)
    if head == FASTTEXT_MAGIC:
        return "fasttext-bin"
    opener = gzip.open if head[:2] == b"\x1f\x8b" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(1 << 16)
    except (OSError, EOFError) as e:
        raise WinnerError(f"{path}: could not read it: {e}") from None
    if head[:4] == FASTTEXT_MAGIC:
        raise WinnerError(f"{path}: a gzipped fastText .bin file; gunzip it first (gensim reads it uncompressed)")
    if head[:1] == b"\x80" or _PICKLE_GLOBAL.match(head):  # a pickle: gensim's native format under another name
        return "native"
    first, _, rest = head.partition(b"\n")
    fields = first.split()
    if not fields:
        raise WinnerError(f"{path}: expected word vectors, found an empty first line; {FORMATS_TRIED}")
    if len(fields) != 2 or not all(x.isdigit() for x in fields):
        return "glove-text"
    # Binary and text word2vec share the header; in text, the first vector line holds `dim` numbers.
    values = rest.split(b"\n", 1)[0].split()[1:]
    is_text = len(values) == int(fields[1]) and all(_is_number(v) for v in values)
    return "word2vec-text" if is_text else "word2vec-binary"


def _is_number(field: bytes) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _pickle_refusal(path: Path) -> str:
    """The one-line error for a pickle given without trust_pickle: why, and how to convert it."""
    out = path.with_name(f"{path.name.split('.')[0] or 'vectors'}.w2v.txt")
    convert = (f"from gensim.models import KeyedVectors as K; m = K.load({str(path)!r}); "
               f"getattr(m, 'wv', m).save_word2vec_format({str(out)!r})")
    return (f"{path} is a pickle (gensim native format): loading it would run any code in it, so it is refused. "
            f"Convert a file you trust to word2vec text once with: python -c \"{convert}\" and pass {out}; "
            f"or pass --trust-pickle (trust_pickle=True) if you made the file yourself")


def _load_native(path: Path) -> KeyedVectors:
    """Unpickle a gensim KeyedVectors or model file: runs code in the file, so only with trust_pickle."""
    from gensim.models import KeyedVectors

    try:
        obj = KeyedVectors.load(str(path), mmap="r")
    except Exception as e:  # unpickling can fail in many ways; all mean "not a gensim vectors file"
        raise WinnerError(f"{path}: could not load it as gensim native vectors: {e}") from None
    kv = getattr(obj, "wv", obj)  # a saved Word2Vec/FastText model carries its vectors as .wv
    if not isinstance(kv, KeyedVectors):
        raise WinnerError(
            f"{path}: expected saved KeyedVectors or a gensim model, found {type(obj).__name__}"
        )
    return kv


# ------------------------------------------------------------------------------------------------ cache


def _store(entry: Path, kv: KeyedVectors, meta: dict) -> None:
    """Save vectors to the cache atomically as npy + json; a cache that cannot be written only costs time."""

    def fill(tmp: Path) -> None:
        np.save(tmp / "vectors.npy", np.ascontiguousarray(kv.vectors), allow_pickle=False)
        (tmp / "words.json").write_text(json.dumps(list(kv.index_to_key)), encoding="utf-8")
        meta_text = json.dumps({**meta, "format": _CACHE_FORMAT}, indent=1) + "\n"
        (tmp / "meta.json").write_text(meta_text, encoding="utf-8")

    try:
        write_dir_atomic(entry, fill)
    except OSError:
        pass


def _read_cached(entry: Path) -> KeyedVectors | None:
    """The vectors of a cache entry, memory-mapped; None if it is missing, of another format or broken."""
    try:
        meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != _CACHE_FORMAT:
            return None
        words = json.loads((entry / "words.json").read_text(encoding="utf-8"))
        vectors = np.load(entry / "vectors.npy", mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError, RecursionError):  # ValueError: bad json or utf-8, a pickle as .npy
        return None
    if not isinstance(vectors, np.ndarray):  # np.load opens a zip as an NpzFile
        vectors.close()
        return None
    valid = (
        isinstance(words, list)
        and all(isinstance(w, str) for w in words)
        and len(set(words)) == len(words)
        and vectors.ndim == 2
        and vectors.shape[0] == len(words)
        and vectors.shape[1] > 0
        and vectors.dtype.kind == "f"
        and vectors.dtype.isnative
        and _all_finite(vectors)
    )
    return keyed_vectors(words, vectors) if valid else None


def keyed_vectors(words: list[str], vectors: np.ndarray) -> KeyedVectors:
    """A KeyedVectors around `vectors` as they are (no copy, so a memory map stays one)."""
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vectors.shape[1], count=0, dtype=vectors.dtype)
    kv.index_to_key = words
    kv.key_to_index = {w: i for i, w in enumerate(words)}
    kv.vectors = vectors
    kv.next_index = len(words)
    return kv


def _all_finite(vectors: np.ndarray, chunk: int = 1 << 16) -> bool:
    """No NaN or infinity in `vectors`, a chunk of rows at a time (memory maps can be large)."""
    return all(np.isfinite(vectors[i : i + chunk]).all() for i in range(0, len(vectors), chunk))


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _status(message: str, progress: bool) -> Iterator[None]:
    """A rich spinner on stderr while something slow runs, unless progress is off or stderr is no terminal."""
    if not progress:
        yield
        return
    console = Console(stderr=True)
    with console.status(message) if console.is_terminal else nullcontext():
        yield


# ------------------------------------------------------------------------------------- default vectors


def train_word2vec(sentences: list[list[str]], **params) -> KeyedVectors:
    """word2vec vectors for `sentences`, DEFAULT_WORD2VEC updated by `params` (deterministic if workers=1)."""
    from gensim.models import Word2Vec

    return Word2Vec(sentences, **{**DEFAULT_WORD2VEC, **params}).wv


def default_vectors(progress: bool = True) -> KeyedVectors:
    """50-d skip-gram word2vec on the shipped Brown train lines, words in the tagger's lookup form (lowercase,
    digits -> 0, `winner.data.windows.normalise`): the default embeddings, no network needed.

    Trained once (about 14 s on one core) and then loaded from the cache, keyed by the parameters,
    the gensim version and the training data.
    """
    import gensim

    data = brown_stream_path("train")
    key = json.dumps(
        {
            "params": DEFAULT_WORD2VEC,
            "normalise": "lower,digit0",  # change this if winner.data.windows.normalise changes
            "gensim": gensim.__version__,
            "data": hashlib.sha256(data.read_bytes()).hexdigest(),
            "format": _CACHE_FORMAT,
        },
        sort_keys=True,
    )
    entry = cache_dir() / "word2vec" / hashlib.sha1(key.encode()).hexdigest()[:16]
    cached = _read_cached(entry)
    if cached is not None:
        return cached
    with _status("Training the default word2vec vectors on Brown (cached for next time)", progress):
        sentences = [[normalise(t) for t in s] for s in brown_sentences("train")]
        kv = train_word2vec(sentences)
    _store(entry, kv, json.loads(key))
    for stale in entry.parent.iterdir():  # entries of the old format (gensim pickles), never read again
        if stale.is_dir() and (stale / "vectors.kv").exists():
            _remove_tree(stale)
    return kv


# ------------------------------------------------------------------------------------------- alignment


def shipped_glove() -> KeyedVectors:
    """The GloVe 6B 100-d subset shipped in data/glove (scripts/glove_subset.py; float16 on disk) as float32:
    the `default` vectors of the tagger and the scorer."""
    path = data_dir() / SHIPPED_GLOVE_DIR
    try:
        words = json.loads((path / "words.json").read_text(encoding="utf-8"))
        vectors = np.load(path / "vectors.npy", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise WinnerError(f"{path}: cannot read the shipped GloVe vectors ({e}); rebuild them with "
                          "scripts/glove_subset.py") from e
    if not isinstance(words, list) or vectors.ndim != 2 or vectors.shape[0] != len(words):
        raise WinnerError(f"{path}: vectors.npy {vectors.shape} does not match words.json")
    return keyed_vectors(words, vectors.astype(np.float32))


def vector_scale(kv: KeyedVectors, chunk: int = 1 << 16) -> float:
    """Standard deviation of all entries of kv.vectors, in float64, a chunk of rows at a time."""
    vectors = kv.vectors
    n = vectors.size
    if n == 0:
        raise WinnerError("the vectors are empty")
    total = total_sq = 0.0
    for start in range(0, len(vectors), chunk):
        block = np.asarray(vectors[start : start + chunk], dtype=np.float64)
        total += float(block.sum())
        total_sq += float(np.square(block).sum())
    mean = total / n
    return float(np.sqrt(max(total_sq / n - mean * mean, 0.0)))


def align_vectors(
    kv: KeyedVectors,
    words: list[str],
    rng: np.random.Generator,
    dtype: type = np.float32,
    fallback_lower: bool = True,
) -> tuple[np.ndarray, dict]:
    """An embedding table for `words`: row i is kv[words[i]] (or kv[words[i].lower()] with fallback_lower).

    Words without a vector get Uniform(-a, a) rows with a = sqrt(3) * std(kv.vectors), so random rows
    have the pretrained vectors' scale, or with fastText vectors the vector of their subword n-grams. Stats:
    found (rows taken from kv), total, coverage, lowered (found only through the lowercase fallback), scale
    (a), and for fastText vectors subword (rows built from n-grams).
    """
    table = np.empty((len(words), kv.vector_size), dtype=dtype)
    index = kv.key_to_index
    rows = np.full(len(words), -1, dtype=np.int64)
    lowered = 0
    for i, word in enumerate(words):
        j = index.get(word)
        if j is None and fallback_lower:
            j = index.get(word.lower())
            lowered += j is not None
        if j is not None:
            rows[i] = j
    found = rows >= 0
    if found.any():
        table[found] = kv.vectors[rows[found]]
    a = float(np.sqrt(3.0) * vector_scale(kv))
    table[~found] = rng.uniform(-a, a, size=(int((~found).sum()), kv.vector_size))
    subword = 0
    if getattr(kv, "bucket", 0):  # fastText: a word outside the table is the mean of its n-gram vectors
        for i in np.flatnonzero(~found):
            vector = kv.get_vector(words[i])
            if np.any(vector):  # a word with no n-gram in the model gets a zero vector: keep the random row
                table[i], subword = vector, subword + 1
    n_found = int(found.sum())
    stats = {
        "found": n_found,
        "total": len(words),
        "coverage": n_found / len(words) if words else 0.0,
        "lowered": lowered,
        "scale": a,
        **({"subword": subword} if getattr(kv, "bucket", 0) else {}),
    }
    return table, stats


def top_words(kv: KeyedVectors, n: int) -> list[str]:
    """The first n words of the vectors (the most frequent, for GloVe and word2vec files)."""
    return list(kv.index_to_key[:n])
