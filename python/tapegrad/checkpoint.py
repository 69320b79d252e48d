"""Checkpoints: parameters, buffers and optimiser state in one .npz file, without pickle.

``save(obj, path)`` takes a Module, an Optimizer, a schedule, a dict of arrays, or a dict naming
several of these (and plain numbers or strings, e.g. the epoch). ``load(path)`` gives back the
same structure with each object replaced by its state_dict, to pass to ``load_state_dict``:

    vg.save({"model": model, "optimizer": opt, "epoch": 3}, "run.npz")
    state = vg.load("run.npz")
    model.load_state_dict(state["model"]); opt.load_state_dict(state["optimizer"])

Arrays are stored as npz members and everything else as JSON, so loading reads data and never
runs code from the file. The file is written to a temporary name and renamed into place, so a crash
leaves either the old file or the new one.
"""

import json
import os
import tempfile
import zipfile

import numpy as np

_FORMAT = "tapegrad-checkpoint"
_META = "__tapegrad__"


def _flatten(obj, prefix, arrays, tree):
    """Arrays go to ``arrays`` under path keys; the returned tree holds JSON values and array refs."""
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = obj.state_dict()
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise TypeError(f"save: {prefix or 'value'} is an object array; only numeric arrays are saved")
        arrays[prefix] = obj
        return {"array": prefix}
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            key = str(key)
            if "/" in key:
                raise ValueError(f"save: key {key!r} contains '/', which checkpoints use as a separator")
            out[key] = _flatten(value, f"{prefix}/{key}" if prefix else key, arrays, tree)
        return {"dict": out}
    if isinstance(obj, (list, tuple)):
        return {"list": [_flatten(v, f"{prefix}/{i}", arrays, tree) for i, v in enumerate(obj)]}
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        obj = obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"value": obj}
    raise TypeError(f"save: cannot store {type(obj).__name__} at {prefix or 'top level'}")


def save(obj, path):
    """Write obj (see the module docstring) to path as an .npz checkpoint, atomically."""
    arrays = {}
    tree = _flatten(obj, "", arrays, None)
    meta = json.dumps({"format": _FORMAT, "version": 1, "tree": tree})
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{_META: np.array(meta)}, **{f"a/{k}": v for k, v in arrays.items()})
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _build(node, arrays, path):
    if not isinstance(node, dict):
        raise ValueError(f"load: {path} has a malformed index")
    if "array" in node:
        key = f"a/{node['array']}"
        if key not in arrays:
            raise ValueError(f"load: {path} lacks the array {node['array']!r} its index names (truncated or edited?)")
        return arrays[key]
    if "dict" in node and isinstance(node["dict"], dict):
        return {k: _build(v, arrays, path) for k, v in node["dict"].items()}
    if "list" in node and isinstance(node["list"], list):
        return [_build(v, arrays, path) for v in node["list"]]
    if "value" not in node:
        raise ValueError(f"load: {path} has a malformed index")
    return node["value"]


def load(path):
    """Read a checkpoint written by save; see the module docstring for what it returns.

    FileNotFoundError for a missing file; ValueError for a file that is not a complete tapegrad
    checkpoint (truncated, corrupted or foreign).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no checkpoint at {path}")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("an .npy array, not an .npz archive")
        with data:
            arrays = {k: data[k] for k in data.files}  # reads (and CRC-checks) every member now
        meta = json.loads(str(arrays.pop(_META)))
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, json.JSONDecodeError, ValueError) as e:
        raise ValueError(f"load: {path} is not a readable tapegrad checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT or not isinstance(meta.get("tree"), dict):
        raise ValueError(f"load: {path} is not a tapegrad checkpoint")
    return _build(meta["tree"], arrays, path)
