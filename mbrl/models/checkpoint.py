"""One-file checkpoints for models: class, constructor arguments, weights and metadata.

A checkpoint rebuilds its model without the caller knowing the class
(``load_checkpoint(path) -> (model, metadata)``), and every failure mode (missing, corrupt,
foreign, tampered, mismatched) raises one ``ValueError`` that names the file and the problem.

Loading never executes code from the file: files are read with ``torch.load(weights_only=True)``
(tensors and plain containers only; a pickled object or callable is refused), constructor
arguments are plain JSON-like values (dataclass configs are stored as dicts and rebuilt from
the project's own registry), and the class comes from the registry of
:func:`register_checkpointable`, never from the file. Every checkpoint carries a SHA-256 of its
content (class, arguments, metadata and every tensor's bytes), verified on load, so a file
changed after saving is refused instead of loading wrong weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

_FORMAT = "mbrl-checkpoint"
_VERSION = 2
_CLASSES: dict[str, type[nn.Module]] = {}
_LAZY_CLASSES: dict[str, str] = {}


def register_checkpointable(cls: type[nn.Module]) -> type[nn.Module]:
    """Make ``cls`` loadable by :func:`load_checkpoint` (use as a class decorator).

    ``cls`` must offer ``init_kwargs() -> dict`` (JSON-like constructor arguments, dataclass
    configs allowed) and accept them back as keyword arguments.
    """
    _CLASSES[cls.__name__] = cls
    return cls


def register_lazy_checkpointable(class_name: str, module: str) -> None:
    """Declare that importing ``module`` registers the checkpointable class ``class_name``.

    For classes whose module is not imported with the package (the GP model loads gpytorch):
    :func:`load_checkpoint` imports ``module`` when it meets a checkpoint of ``class_name``.
    """
    _LAZY_CLASSES[class_name] = module


def _registered_class(name: str) -> type[nn.Module] | None:
    if name not in _CLASSES and name in _LAZY_CLASSES:
        import importlib

        importlib.import_module(_LAZY_CLASSES[name])
    return _CLASSES.get(name)


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__dataclass__": type(value).__name__, **dataclasses.asdict(value)}
    return value


def _init_kwargs(module: nn.Module) -> dict[str, Any]:
    if not hasattr(module, "init_kwargs"):
        raise TypeError(f"{type(module).__name__} has no init_kwargs(); it cannot be checkpointed")
    return {k: _to_plain(v) for k, v in module.init_kwargs().items()}


def content_hash(payload: dict[str, Any]) -> str:
    """SHA-256 (hex) of a checkpoint's content: class, arguments, metadata and every tensor of
    its ``state_dict`` (name, dtype, shape, bytes), independent of the file's pickling."""
    digest = hashlib.sha256()
    header = {k: payload.get(k) for k in ("format", "version", "class", "init_kwargs", "metadata")}
    digest.update(json.dumps(header, sort_keys=True, default=repr).encode())
    for key in sorted(payload.get("state_dict", {})):
        tensor = payload["state_dict"][key]
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(
            tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        )
    return digest.hexdigest()


def save_checkpoint(
    path: str | os.PathLike, module: nn.Module, metadata: dict | None = None
) -> None:
    """Write ``module`` (class, constructor args, ``state_dict``) and ``metadata`` to ``path``.

    Written atomically (temp file + rename), on CPU, so it loads on any device.
    """
    if type(module).__name__ not in _CLASSES:
        raise TypeError(f"{type(module).__name__} is not registered with @register_checkpointable")
    payload = {
        "format": _FORMAT,
        "version": _VERSION,
        "class": type(module).__name__,
        "init_kwargs": _init_kwargs(module),
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "metadata": metadata or {},
    }
    payload["sha256"] = content_hash(payload)
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _read(path: Path) -> dict:
    if not path.exists():
        raise ValueError(f"checkpoint {str(path)!r} does not exist")
    try:
        # weights_only: the unpickler accepts tensors and plain containers only, so a file
        # carrying a pickled callable is refused before anything in it runs.
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"checkpoint {str(path)!r} is corrupt, not a torch file, or holds objects other "
            f"than tensors and plain data (refused without running them): {err}"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ValueError(f"{str(path)!r} is not an mbrl checkpoint (no '{_FORMAT}' header)")
    if payload.get("version") != _VERSION:
        raise ValueError(
            f"checkpoint {str(path)!r} has version {payload.get('version')}, expected {_VERSION}"
        )
    if not isinstance(payload.get("state_dict"), dict) or not all(
        isinstance(v, torch.Tensor) for v in payload["state_dict"].values()
    ):
        raise ValueError(f"checkpoint {str(path)!r} has a malformed state_dict")
    expected = payload.get("sha256")
    if not isinstance(expected, str) or content_hash(payload) != expected:
        raise ValueError(
            f"checkpoint {str(path)!r} fails its SHA-256 check: the file was modified or "
            "damaged after it was saved"
        )
    return payload


def check_state_dict_compatible(
    module: nn.Module, state: dict[str, torch.Tensor], source: str
) -> None:
    """Raise ``ValueError`` listing missing/unexpected keys and shape mismatches."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if own[k].shape != state[k].shape and k != "elites"
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if shapes:
        problems.append("shape mismatches: " + "; ".join(shapes))
    if problems:
        raise ValueError(
            f"checkpoint {source} does not match {type(module).__name__}: " + ", ".join(problems)
        )


def _rebuild_kwargs(kwargs: dict[str, Any], cls: type) -> dict[str, Any]:
    from mbrl.models import configs  # late import: the config dataclasses live with their models

    out = {}
    for key, value in kwargs.items():
        if isinstance(value, dict) and "__dataclass__" in value:
            fields = dict(value)
            cfg_cls = configs.get(fields.pop("__dataclass__"))
            value = cfg_cls(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
            )
        out[key] = value
    return out


def load_checkpoint(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    expected_class: type[nn.Module] | None = None,
) -> tuple[nn.Module, dict]:
    """Rebuild the model saved at ``path``: returns ``(model, metadata)``, model in eval mode.

    Raises:
        ValueError: missing/corrupt/foreign file, unknown class, a class other than
            ``expected_class``, or weights that do not fit the rebuilt model.
    """
    path = Path(path)
    payload = _read(path)
    name = payload["class"]
    cls = _registered_class(name)
    if cls is None:
        raise ValueError(
            f"checkpoint {str(path)!r} holds unknown model class {name!r}; "
            f"known: {sorted(set(_CLASSES) | set(_LAZY_CLASSES))}"
        )
    if expected_class is not None and not issubclass(cls, expected_class):
        raise ValueError(
            f"checkpoint {str(path)!r} holds a {name}, expected a {expected_class.__name__}"
        )
    try:
        model = cls(**_rebuild_kwargs(payload["init_kwargs"], cls))
    except (TypeError, ValueError) as err:
        raise ValueError(f"checkpoint {str(path)!r}: cannot rebuild {name} ({err})") from err
    _load_state(model, payload["state_dict"], repr(str(path)))
    return model.to(device).eval(), payload["metadata"]


def _load_state(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    check_state_dict_compatible(module, state, source)
    # Buffers whose size depends on fitting (the elite set) take the saved size.
    for key, value in state.items():
        owner = module
        *parents, leaf = key.split(".")
        for part in parents:
            owner = getattr(owner, part)
        if leaf in owner._buffers and owner._buffers[leaf].shape != value.shape:
            owner._buffers[leaf] = value.clone().to(owner._buffers[leaf].device)
    module.load_state_dict(state)


def load_weights(module: nn.Module, path: str | os.PathLike) -> dict:
    """Load a checkpoint's weights into an existing ``module``; returns the metadata.

    Raises:
        ValueError: as :func:`load_checkpoint`, plus a class or shape mismatch with ``module``.
    """
    path = Path(path)
    payload = _read(path)
    if payload["class"] != type(module).__name__:
        raise ValueError(
            f"checkpoint {str(path)!r} holds a {payload['class']}, cannot load into {type(module).__name__}"
        )
    _load_state(module, payload["state_dict"], repr(str(path)))
    return payload["metadata"]
