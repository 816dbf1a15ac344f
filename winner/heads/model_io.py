"""Model directories: config.json + params.npz + vocab.json, written atomically, loaded without pickle.

Every head saves through here, so every model file is plain arrays and json: loading one never runs code.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np

from winner import __version__
from winner.core.atomic import old_name, recover_dir, write_dir_atomic
from winner.core.mlp import MLPConfig, WindowMLP, load_params_npz
from winner.data.conll import SCHEMES
from winner.data.vocab import UNK, Vocab
from winner.errors import ModelFormatError, WinnerError


def save_model_dir(path: str | Path, kind: str, config: dict, arrays: dict[str, np.ndarray], vocab: Vocab,
                   extra_files: dict[str, str] | None = None) -> None:
    """Write a model of `kind` (e.g. "tagger") with format tag `winner.<kind>.v1` and the winner version that
    wrote it, all or nothing."""
    config = {"format": format_tag(kind), "winner_version": __version__, **config}

    def fill(tmp: Path) -> None:
        (tmp / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
        np.savez(tmp / "params.npz", **arrays)
        vocab.save(tmp / "vocab.json")
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")

    write_dir_atomic(path, fill)


def format_tag(kind: str) -> str:
    return f"winner.{kind}.v1"


def read_model_config(path: Path, kind: str) -> dict:
    """A saved model's config.json, refusing other kinds and unknown format versions (its arrays not read)."""
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise ModelFormatError(f"{path}: not a winner model directory (no config.json)")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ModelFormatError(f"{cfg_path}:{e.lineno}: invalid json ({e.msg})") from e
    except UnicodeDecodeError as e:
        raise ModelFormatError(f"{cfg_path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not isinstance(config, dict):
        raise ModelFormatError(f"{cfg_path}: expected a JSON object, found a {type(config).__name__}")
    found = config.get("format")
    if found != format_tag(kind):
        raise ModelFormatError(f"{path}: expected a model of format {format_tag(kind)}, found {found}")
    return config


def load_model_dir(path: str | Path, kind: str) -> tuple[dict, dict[str, np.ndarray], Vocab]:
    """(config, arrays, vocab) of a saved model, refusing other kinds and unknown format versions."""
    path = Path(path)
    config = read_model_config(path, kind)
    for name in ("params.npz", "vocab.json"):
        if not (path / name).is_file():
            raise ModelFormatError(f"{path}: {name} is missing")
    try:
        vocab = Vocab.load(path / "vocab.json")
    except (ValueError, TypeError, json.JSONDecodeError) as e:
        raise ModelFormatError(f"{path / 'vocab.json'}: {e}") from None
    if vocab.unk_id is None:
        raise ModelFormatError(f"{path / 'vocab.json'}: has no {UNK}, which every unknown word is read as")
    return config, load_params_npz(path / "params.npz"), vocab


def save_mlp_model(path: str | Path, kind: str, model: WindowMLP, vocab: Vocab, head: dict,
                   training: dict | None = None) -> None:
    """Save a head built on the window MLP: config.json holds {"mlp": ..., kind: head, "training": ...}."""
    config = {"mlp": model.config_dict(), kind: head, "training": training or {}}
    save_model_dir(path, kind, config, model.to_arrays(), vocab)


def load_mlp_model(path: str | Path, kind: str) -> tuple[WindowMLP, Vocab, dict, dict]:
    """(model, vocab, head settings, whole config) of a head saved by save_mlp_model, every shape checked."""
    config, arrays, vocab = load_model_dir(path, kind)
    try:
        mlp_config = MLPConfig(**config["mlp"])
        head = config[kind]
        shapes = mlp_config.param_shapes()
    except KeyError as e:
        raise ModelFormatError(f"{path}/config.json: the key {e} is missing") from None
    except (TypeError, ValueError) as e:
        raise ModelFormatError(f"{path}/config.json: {e}") from None
    if mlp_config.vocab_size != len(vocab):
        raise ModelFormatError(f"{path}: vocab.json has {len(vocab)} words, config says {mlp_config.vocab_size}")
    for name in shapes:  # before anything the size of the config is allocated
        if name in arrays:
            try:
                mlp_config.check_shape(name, arrays[name].shape)
            except ModelFormatError as e:
                raise ModelFormatError(f"{path}/params.npz: {e}") from None
    try:
        model = WindowMLP.from_arrays(mlp_config, arrays)
    except ModelFormatError as e:
        raise ModelFormatError(f"{path}/params.npz: {e}") from e
    return model, vocab, head, config


def load_window_head(path: str | Path, kind: str, spec_type: type) -> tuple[WindowMLP, Vocab, object]:
    """(model, vocab, spec) of a window head (tagger, scorer) whose config holds spec_type's fields under `kind`."""
    model, words, head, _ = load_mlp_model(path, kind)
    try:
        spec = spec_type(**head)
    except (TypeError, ValueError) as e:
        raise ModelFormatError(f"{path}/config.json: {e}") from None
    if not isinstance(spec.window, int) or getattr(spec, "positions", 2 * spec.window + 1) != model.config.n_positions:
        raise ModelFormatError(f"{path}/config.json: {kind} window {spec.window!r} does not fit the "
                               f"network's {model.config.n_positions} positions (2 x window + 1, and 2 more with "
                               "context codes)")
    for name in ("scheme", "output_scheme"):
        if name in head and head[name] not in SCHEMES:
            raise ModelFormatError(f"{path}/config.json: {kind} {name} must be one of {', '.join(SCHEMES)}, "
                                   f"got {head[name]!r}")
    return model, words, spec


def resolve_model_dir(path: str | Path) -> Path:
    """A model directory, or a run directory holding one in model/."""
    path = Path(path)
    if (path / "config.json").is_file():
        return path
    model = path / "model"
    with contextlib.suppress(OSError):  # a read-only run directory: read the parked copy instead
        recover_dir(model)  # a save killed between its two renames
    for candidate in (model, old_name(model)):
        if (candidate / "config.json").is_file():
            return candidate
    raise WinnerError(f"{path}: no model here (expected config.json in it or in {path / 'model'})")
