"""Where labelled sentences come from: a CoNLL file, a local dataset (a `save_to_disk` directory, Parquet /
JSON / CSV files or a directory of them) or a Hugging Face hub name (`name` or `name:config`).

A source that exists on disk is always read from disk, whether given as `/abs/path`, `./dir` or a bare
relative name; only what is not on disk goes to the hub. With no network, a hub name fails at once (a
socket probe, not the hub client's retries) with a message saying to pass a local path.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from winner.data.conll import Sentence, read_conll, sentences_from_dataset, sentences_to_dataset, warn_scheme_violations
from winner.errors import WinnerError

if TYPE_CHECKING:
    import datasets

# File types read by the `datasets` library's packaged builders, by suffix.
DATA_FILE_BUILDERS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv", ".arrow": "arrow"}
CONLL_SUFFIXES = {".txt", ".conll", ".conllu", ".gz", ".iob", ".iob1", ".iob2", ".bio", ".bilou", ".iobes", ".tsv"}
# Split names a dataset may use, in order of preference, for what winner asks for.
SPLIT_NAMES = {"train": ("train",), "validation": ("validation", "valid", "dev"), "test": ("test",)}
PROBE_SECONDS = 1.5


def load_ner_dataset(source: str, split: str = "train") -> datasets.Dataset:
    """`source` as a `datasets.Dataset` (one split; a CoNLL file or a single data file is read whole)."""
    path = Path(source).expanduser()
    if path.is_file():
        builder = DATA_FILE_BUILDERS.get(path.suffix.lower())
        if builder is None:
            return sentences_to_dataset(read_conll(path))
        return _load_files(builder, {"train": [str(path)]}, "train", source)
    if path.is_dir():
        return _load_directory(path, split, source)
    if _looks_like_path(source):
        raise WinnerError(f"{source}: no such file or directory")
    return _load_hub(source, split)


def load_sentences(source: str, split: str = "train") -> list[Sentence]:
    """Sentences from any source `load_ner_dataset` reads: the one loader the CLI calls. Tags that break the
    corpus's scheme are counted in one warning line."""
    path = Path(source).expanduser()
    if path.exists() and not path.is_dir() and path.suffix.lower() not in DATA_FILE_BUILDERS:
        sentences = read_conll(path)  # a CoNLL file or a pipe: straight to sentences, no Dataset and back
    else:
        sentences = sentences_from_dataset(load_ner_dataset(source, split), source)
    warn_scheme_violations(sentences, source)
    return sentences


def local_splits(source: str) -> list[str]:
    """The splits a local dataset directory holds (empty for a file, a hub name or a directory without splits)."""
    path = Path(source).expanduser()
    if not path.is_dir():
        return []
    if (path / "dataset_dict.json").is_file():
        return list(json.loads((path / "dataset_dict.json").read_text(encoding="utf-8")).get("splits", []))
    return sorted(_split_files(path))


def validation_split(source: str) -> str | None:
    """The name of a local dataset's validation split (validation, valid or dev), if it has one."""
    splits = local_splits(source)
    return next((s for s in SPLIT_NAMES["validation"] if s in splits), None)


def _pick_split(available: list[str], split: str, source: str) -> str:
    for name in SPLIT_NAMES.get(split, (split,)):
        if name in available:
            return name
    if split == "train" and len(available) == 1:
        return available[0]
    raise WinnerError(f"{source}: no {split} split (it has {', '.join(available) or 'none'})")


def _load_directory(path: Path, split: str, source: str) -> datasets.Dataset:
    """A `save_to_disk` directory (one dataset or a DatasetDict) or a directory of data files named by split."""
    import datasets

    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            return loaded[_pick_split(list(loaded), split, source)]
        return loaded
    files = _split_files(path)
    if not files:
        raise WinnerError(f"{source}: a directory, but neither a save_to_disk dataset nor Parquet/JSON/CSV files")
    builders = {DATA_FILE_BUILDERS[Path(f).suffix.lower()] for fs in files.values() for f in fs}
    if len(builders) > 1:
        raise WinnerError(f"{source}: mixes data file types ({', '.join(sorted(builders))}); keep one")
    chosen = _pick_split(sorted(files), split, source)
    return _load_files(builders.pop(), {chosen: files[chosen]}, chosen, source)


def _split_files(path: Path) -> dict[str, list[str]]:
    """Data files of a directory grouped by split: `train.parquet`, `train-00000-of-00002.parquet`,
    `data/validation-*.parquet` (the hub's layout) and so on."""
    files: dict[str, list[str]] = {}
    for f in sorted(path.rglob("*")):
        if f.is_file() and f.suffix.lower() in DATA_FILE_BUILDERS and not f.name.startswith("."):
            split = next((name for names in SPLIT_NAMES.values() for name in names
                          if f.stem.lower() == name or f.stem.lower().startswith((name + "-", name + "_"))), None)
            if split is not None:
                files.setdefault(split, []).append(str(f))
    return files


def _load_files(builder: str, data_files: dict[str, list[str]], split: str, source: str) -> datasets.Dataset:
    import datasets

    try:
        return datasets.load_dataset(builder, data_files=data_files, split=split)
    except Exception as e:  # a malformed file: one line naming it
        raise WinnerError(f"{source}: could not read as {builder}: {_first_line(e)}") from None


def _load_hub(source: str, split: str) -> datasets.Dataset:
    """A hub dataset (`name` or `name:config`), failing at once when offline."""
    name, _, config = source.partition(":")
    hint = "pass a local path instead (a CoNLL file, a save_to_disk directory or Parquet/JSON/CSV files)"
    offline = next((v for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if os.environ.get(v, "") not in ("", "0")),
                   None)
    if offline is None and not hub_reachable():
        raise WinnerError(f"{source}: not a local path, and the Hugging Face hub ({_hub_host()}) cannot be reached; "
                          f"{hint}")
    import datasets

    try:
        ds = datasets.load_dataset(name, config, split=split) if config else datasets.load_dataset(name, split=split)
    except Exception as e:  # offline, unknown name, missing split, script-based repo: all one message
        where = f"{offline} is set, so only a cached copy could be used" if offline else _first_line(e)
        raise WinnerError(f"could not load dataset {source!r} (split {split!r}) from the Hugging Face hub: "
                          f"{where}; {hint}") from None
    missing = [c for c in ("tokens", "ner_tags") if c not in ds.column_names]
    if missing:
        raise WinnerError(f"{source}: expected columns tokens and ner_tags, found {ds.column_names}")
    return ds


def _hub_host() -> str:
    return urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"


def hub_reachable() -> bool:
    """Whether a TCP connection to the hub, or to the proxy the hub client would use, opens within
    PROBE_SECONDS (a dead proxy would otherwise cost half a minute of retries)."""
    proxy = next((os.environ[v] for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
                  if os.environ.get(v)), None)
    host, port = _hub_host(), 443
    if proxy:
        parsed = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        try:
            host, port = parsed.hostname or host, parsed.port or 80
        except ValueError:
            return True  # a proxy setting we cannot read: let the hub client judge it
    try:
        socket.create_connection((host, port), timeout=PROBE_SECONDS).close()
        return True
    except OSError:
        return False


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def _looks_like_path(source: str) -> bool:
    """A missing file should say so rather than fail as an unknown hub dataset."""
    suffix = Path(source).suffix.lower()
    return (source.startswith((".", "/", "~")) or "\\" in source or suffix in CONLL_SUFFIXES
            or suffix in DATA_FILE_BUILDERS)
