"""Checkpoints: parameters, buffers and optimiser state in one .npz file, without pickle.

``save(obj, path)`` takes a Module, an Optimizer, a schedule, a dict of arrays or tensors, or a
dict naming several of these (and plain numbers or strings, e.g. the epoch). ``load(path)`` gives
back the same structure with each object replaced by its state_dict, to pass to
``load_state_dict``; arrays come back as arrays and tensors as tensors (with the dtype, dialect and
requires_grad they had; a graph is never saved):

    vg.save({"model": model, "optimizer": opt, "epoch": 3}, "run.npz")
    state = vg.load("run.npz")
    model.load_state_dict(state["model"]); opt.load_state_dict(state["optimizer"])

PyTorch's idiom works as it is, writing exactly the path given (any name; the format is an npz):

    torch.save(net.state_dict(), "./cifar_net.pth")
    net.load_state_dict(torch.load("./cifar_net.pth", weights_only=True))

Arrays are stored as npz members and everything else as JSON, so loading reads data and never
runs code from the file. The file is written to a temporary name and renamed into place, so a crash
leaves either the old file or the new one (``path`` may also be a binary file object; it is then
written directly).

``load`` treats the file as untrusted: it refuses anything but a regular file, reads only the
members the index names, and checks every declared size against the file before allocating:
at most ``MAX_MEMBERS`` members and ``MAX_DIRECTORY_BYTES`` of zip directory, an index of at most
``MAX_INDEX_BYTES``, stored members no larger than the file, deflated members inflating to at most
``MAX_INFLATION`` times their compressed size, each .npy header agreeing with its member's size,
and at most ``MAX_DEPTH`` levels of nesting. A file that breaks any of these raises ValueError;
``save`` refuses to write such a file.
"""

import functools
import io
import json
import os
import stat
import struct
import tempfile
import zipfile

import numpy as np

from ._torchlike import make_tensor
from .core import TensorNode

_FORMAT = "tapegrad-checkpoint"
_META = "__tapegrad__"

# Raise these (tapegrad.checkpoint.MAX_MEMBERS = ...) to save and load larger files knowingly.
MAX_MEMBERS = 10_000  # arrays in one checkpoint (a large model with Adam state has a few thousand)
MAX_DIRECTORY_BYTES = 4 << 20  # zip central directory: bounds the time zipfile spends listing members
MAX_INDEX_BYTES = 64 << 20  # the JSON index, as the .npy of a unicode string (4 bytes a character)
MAX_INFLATION = 64  # deflated members (tapegrad writes none) may inflate to 64x their size, plus 1 MiB
MAX_DEPTH = 100  # levels of dicts and lists

_INFLATION_SLACK = 1 << 20
_MAX_NPY_HEADER = 10_000  # numpy's own default limit
_CHUNK = 16 << 20  # bytes read from a member at a time, straight into the array's buffer
_DIRECTORY_ENTRY = 46 + 32  # a zip central-directory record without its name, plus numpy's zip64 extra


# ---- save ----

def _flatten(obj, path, arrays, depth=0):
    """Arrays go to ``arrays`` under path keys; the returned tree holds JSON values and array refs.

    ``path`` is None at the top and the keys from the top joined by "/" below it; keys cannot
    contain "/", so two different places never share a path (a top-level key "" is the path "").
    """
    where = "the top level" if path is None else repr(path)
    if depth > MAX_DEPTH:
        raise ValueError(f"save: the value at {where[:60]}... is nested more than {MAX_DEPTH} levels deep (a cycle?)")
    if isinstance(obj, TensorNode):  # a tensor: its value, dialect and requires_grad (never its graph)
        arrays[path or ""] = np.asarray(obj.value, order="C")
        return {"array": path or "", "tensor": {"requires_grad": bool(obj.requires_grad), "dialect": obj.dialect}}
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = obj.state_dict()
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError(f"save: {'value' if path is None else path} is an object array; only numeric arrays "
                            "are saved")
        arrays[path or ""] = obj
        return {"array": path or ""}
    if isinstance(obj, dict):
        out, original = {}, {}
        for key, value in obj.items():
            name = str(key)
            if "/" in name:
                raise ValueError(f"save: key {name!r} contains '/', which checkpoints use as a separator")
            if name in original:  # e.g. 1 and "1": the file's JSON index has string keys only
                raise ValueError(f"save: keys {original[name]!r} and {key!r} at {where} are both stored as "
                                 f"{name!r}; one would overwrite the other")
            original[name] = key
            out[name] = _flatten(value, name if path is None else f"{path}/{name}", arrays, depth + 1)
        return {"dict": out}
    if isinstance(obj, (list, tuple)):
        prefix = "" if path is None else f"{path}/"
        return {"list": [_flatten(v, f"{prefix}{i}", arrays, depth + 1) for i, v in enumerate(obj)]}
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        obj = obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"value": obj}
    raise TypeError(f"save: cannot store {type(obj).__name__} at {where}")


def _check_loadable(members, meta):
    """Refuse to write a file that load would refuse for its size."""
    if len(members) + 1 > MAX_MEMBERS:
        raise ValueError(f"save: {len(members)} arrays; a checkpoint holds at most {MAX_MEMBERS - 1}")
    directory = sum(_DIRECTORY_ENTRY + len(f"{name}.npy".encode()) for name in members)
    if directory > MAX_DIRECTORY_BYTES:
        raise ValueError(f"save: the names of the arrays take {directory} bytes of zip directory; "
                         f"a checkpoint allows {MAX_DIRECTORY_BYTES} (shorten the keys)")
    if 4 * len(meta) + 256 > MAX_INDEX_BYTES:
        raise ValueError(f"save: the index takes {4 * len(meta)} bytes; a checkpoint allows {MAX_INDEX_BYTES}")


def save(obj, path):
    """Write obj (see the module docstring) to path as an .npz checkpoint, atomically.

    ``path`` is a file name (written to a temporary file, then renamed into place) or a binary file
    object open for writing. TypeError for what cannot be stored; ValueError for keys containing
    "/", keys that collide as strings (1 and "1"), nesting deeper than MAX_DEPTH, or more than
    MAX_MEMBERS arrays.
    """
    arrays = {}
    tree = _flatten(obj, None, arrays)
    meta = json.dumps({"format": _FORMAT, "version": 1, "tree": tree})
    members = {f"a/{k}": v for k, v in arrays.items()}
    _check_loadable(members, meta)
    if hasattr(path, "write"):
        np.savez(path, **{_META: np.array(meta)}, **members)
        return
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{_META: np.array(meta)}, **members)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


# ---- load ----

class _Bad(Exception):
    """What is wrong with the file; load turns it into a ValueError naming the file."""


_KINDS = [(stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]


def _kind(mode):
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _open_regular(path):
    """A binary file object for the regular file at path; never blocks on a FIFO or device."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"load: no checkpoint at {path}") from None
    if not stat.S_ISREG(mode):
        raise ValueError(f"load: {path} is {_kind(mode)}, not a regular file")
    # O_NONBLOCK: should the path have become a FIFO since the stat, opening it must not wait for a writer
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ValueError(f"load: {path} is {_kind(mode)}, not a regular file")
    return os.fdopen(fd, "rb")


def _check_file_object(f, name):
    """The size of a binary file object load can read: a regular file or an in-memory buffer."""
    if isinstance(f, io.TextIOBase):
        raise TypeError(f"load: {name} is open in text mode; open the checkpoint with mode 'rb'")
    try:
        fd = f.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None  # io.BytesIO and the like: no descriptor, but they are seekable data in memory
    if fd is not None:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ValueError(f"load: {name} is {_kind(mode)}, not a regular file")
    if not (hasattr(f, "seekable") and f.seekable()):
        raise ValueError(f"load: {name} is a file object that cannot seek; a checkpoint is a zip archive, "
                         "read from its end")
    return f.seek(0, os.SEEK_END)


def _directory_size(f, size):
    """(members, bytes) of the zip central directory as the end record declares them, read before
    zipfile lists the members (which takes time in proportion to the directory)."""
    tail_len = min(size, 22 + 0xFFFF)  # the end record, after which only a comment of < 64 KiB may follow
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = len(tail) - 22 if tail[-22:-18] == b"PK\x05\x06" else tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise _Bad("no zip end record (not a zip archive, or truncated)")
    members, directory = struct.unpack("<HI", tail[at + 10:at + 16])
    if (members == 0xFFFF or directory == 0xFFFFFFFF) and at >= 20 and tail[at - 20:at - 16] == b"PK\x06\x07":
        (offset,) = struct.unpack("<Q", tail[at - 12:at - 4])  # the zip64 end record's position
        f.seek(offset)
        record = f.read(56)
        if len(record) == 56 and record[:4] == b"PK\x06\x06":
            members, directory = struct.unpack("<QQ", record[32:48])
    return members, directory


def _check_member(info, archive_size):
    """Refuse a member whose sizes, as the zip directory declares them, it cannot have."""
    if info.compress_type == zipfile.ZIP_STORED:
        if info.file_size != info.compress_size:
            raise _Bad(f"member {info.filename!r} is stored uncompressed but declares {info.file_size} bytes "
                       f"in {info.compress_size}")
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        if info.file_size > MAX_INFLATION * info.compress_size + _INFLATION_SLACK:
            raise _Bad(f"member {info.filename!r} would inflate {info.compress_size} bytes to {info.file_size} "
                       f"(more than {MAX_INFLATION}x: a zip bomb, or not a file tapegrad wrote)")
    else:
        raise _Bad(f"member {info.filename!r} uses zip compression method {info.compress_type}; "
                   "a checkpoint is stored or deflated")
    if info.compress_size > archive_size:
        raise _Bad(f"member {info.filename!r} declares {info.compress_size} bytes in a file of {archive_size}")


@functools.lru_cache(maxsize=256)
def _parse_header(raw):
    """(shape, fortran_order, dtype) of an .npy header, by numpy's own parser (a literal_eval, which
    is slow: a checkpoint's headers repeat, so each distinct one is parsed once)."""
    f = io.BytesIO(raw)
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return read(f, max_header_size=_MAX_NPY_HEADER)


def _read_array(zf, info):
    """The .npy member ``info`` as an array, its header checked against the member's declared size
    before its buffer is allocated, read in chunks straight into that buffer."""
    with zf.open(info) as member:
        prefix = member.read(8)  # magic string and version
        if len(prefix) < 8 or prefix[:6] != b"\x93NUMPY":
            raise _Bad(f"member {info.filename!r} is not an .npy array (no .npy magic string)")
        if prefix[6:] not in (b"\x01\x00", b"\x02\x00"):
            raise _Bad(f"member {info.filename!r} is .npy format {prefix[6]}.{prefix[7]}, which load does not read")
        length_field = member.read(2 if prefix[6] == 1 else 4)
        length = int.from_bytes(length_field, "little")
        if len(length_field) < (2 if prefix[6] == 1 else 4) or length > _MAX_NPY_HEADER:
            raise _Bad(f"member {info.filename!r} has an .npy header of {length} bytes")
        text = member.read(length)
        try:
            shape, fortran, dtype = _parse_header(prefix + length_field + text)
        except ValueError as e:  # numpy's message: a truncated or malformed header, an unknown dtype
            raise _Bad(f"member {info.filename!r} is not a valid .npy array ({e})") from None
        header = len(prefix) + len(length_field) + len(text)
        if dtype.hasobject:
            raise _Bad(f"member {info.filename!r} holds Python objects (pickled); a checkpoint holds only data")
        if any(n < 0 for n in shape):
            raise _Bad(f"member {info.filename!r} declares the shape {shape}")
        count = 1
        for n in shape:
            count *= n  # Python ints: a huge declared shape cannot wrap around
        nbytes = count * dtype.itemsize
        if header + nbytes != info.file_size:
            raise _Bad(f"member {info.filename!r} declares shape {shape} of {dtype} ({nbytes} bytes) in a member "
                       f"of {info.file_size - header} data bytes")
        buffer = np.empty(shape[::-1] if fortran else shape, dtype=dtype)
        raw = memoryview(buffer.reshape(-1).view(np.uint8)) if nbytes else memoryview(b"")
        done = 0
        while done < nbytes:
            got = member.readinto(raw[done:done + _CHUNK])
            if not got:
                raise _Bad(f"member {info.filename!r} ends after {done} of {nbytes} data bytes")
            done += got
        if member.read(1):  # also where zipfile checks the CRC of the whole member
            raise _Bad(f"member {info.filename!r} holds more than its {nbytes} data bytes")
    return buffer.T if fortran else buffer


_SCALARS = (type(None), bool, int, float, str)


def _names(node, names, depth=0):
    """Check the index below node; add the names of the arrays it refers to."""
    if depth > MAX_DEPTH:
        raise _Bad(f"an index nested more than {MAX_DEPTH} levels deep")
    if not isinstance(node, dict):
        raise _Bad("a malformed index")
    if "array" in node:
        if not isinstance(node["array"], str):
            raise _Bad("a malformed index (an array name that is not a string)")
        tensor = node.get("tensor")
        if tensor is not None and not (isinstance(tensor, dict) and isinstance(tensor.get("requires_grad"), bool)
                                       and tensor.get("dialect", "pytorch") in ("pytorch", "vugrad")):
            raise _Bad("a malformed index (a tensor entry without requires_grad or with an unknown dialect)")
        names.add(node["array"])
    elif "dict" in node and isinstance(node["dict"], dict):
        for value in node["dict"].values():
            _names(value, names, depth + 1)
    elif "list" in node and isinstance(node["list"], list):
        for value in node["list"]:
            _names(value, names, depth + 1)
    elif "value" not in node or not isinstance(node["value"], _SCALARS):
        raise _Bad("a malformed index")


def _build(node, arrays):
    """The structure the (checked) index describes, with its arrays in place."""
    if "array" in node:
        tensor = node.get("tensor")
        if tensor is not None:
            if tensor.get("dialect") == "vugrad":
                return TensorNode(arrays[node["array"]], requires_grad=tensor["requires_grad"])
            return make_tensor(arrays[node["array"]], requires_grad=tensor["requires_grad"])
        return arrays[node["array"]]
    if "dict" in node and isinstance(node["dict"], dict):
        return {k: _build(v, arrays) for k, v in node["dict"].items()}
    if "list" in node and isinstance(node["list"], list):
        return [_build(v, arrays) for v in node["list"]]
    return node["value"]


def _load_from(f, size):
    members, directory = _directory_size(f, size)
    if members > MAX_MEMBERS:
        raise _Bad(f"{members} zip members; a checkpoint holds at most {MAX_MEMBERS}")
    if directory > MAX_DIRECTORY_BYTES:
        raise _Bad(f"a zip directory of {directory} bytes; a checkpoint allows at most {MAX_DIRECTORY_BYTES}")
    f.seek(0)
    with zipfile.ZipFile(f) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise _Bad(f"{len(infos)} zip members; a checkpoint holds at most {MAX_MEMBERS}")
        by_name = {info.filename: info for info in infos}
        if len(by_name) != len(infos):
            raise _Bad("two zip members of the same name")

        index = by_name.get(f"{_META}.npy")
        if index is None:
            raise _Bad(f"no index member {_META}.npy")
        _check_member(index, size)
        if index.file_size > MAX_INDEX_BYTES:
            raise _Bad(f"an index of {index.file_size} bytes; a checkpoint allows at most {MAX_INDEX_BYTES}")
        text = _read_array(zf, index)
        if text.dtype.kind != "U" or text.ndim != 0:
            raise _Bad(f"an index of dtype {text.dtype} and shape {text.shape}, not a string")
        try:
            meta = json.loads(str(text))
        except RecursionError:
            raise _Bad(f"an index nested more than {MAX_DEPTH} levels deep") from None
        except ValueError as e:  # json.JSONDecodeError, and integers too long to convert
            raise _Bad(f"an index that is not JSON: {e}") from None
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT or not isinstance(meta.get("tree"), dict):
            raise _Bad(f"an index of another format than {_FORMAT!r}")
        if meta.get("version") != 1:
            raise _Bad(f"format version {meta.get('version')!r}; this tapegrad reads version 1")

        names = set()
        _names(meta["tree"], names)
        infos = {}
        for name in names:
            info = by_name.get(f"a/{name}.npy")  # exactly what save writes: never a member without .npy
            if info is None:
                raise _Bad(f"the array {name!r} its index names is missing: no member 'a/{name}.npy' "
                           "(truncated or edited?)")
            _check_member(info, size)
            infos[name] = info
        # members pointing at the same bytes would make a small file allocate without bound
        stored = sum(info.compress_size for info in infos.values())
        if stored > size:
            raise _Bad(f"{stored} bytes of arrays declared in a file of {size}")
        deflated = [info for info in infos.values() if info.compress_type == zipfile.ZIP_DEFLATED]
        inflated = sum(info.file_size for info in deflated)
        if inflated > MAX_INFLATION * sum(info.compress_size for info in deflated) + _INFLATION_SLACK:
            raise _Bad(f"arrays that would inflate to {inflated} bytes (more than {MAX_INFLATION}x: a zip bomb)")
        arrays = {name: _read_array(zf, info) for name, info in infos.items()}
    return _build(meta["tree"], arrays)


def load(path, weights_only=True, map_location=None):
    """Read a checkpoint written by save; see the module docstring for what it returns.

    ``path`` is a file name or a binary file object (seekable: a regular file or an io.BytesIO).
    FileNotFoundError for a missing file; ValueError, promptly, for anything that is not a complete
    tapegrad checkpoint within the module's size limits (truncated, corrupted, foreign, a zip bomb,
    a FIFO, a directory or a device). ``weights_only`` (True or False) and ``map_location`` (None or
    the CPU) are PyTorch's arguments: a checkpoint holds only data either way, and loads on the CPU.
    """
    if not isinstance(weights_only, bool):
        raise TypeError(f"load: weights_only must be True or False, got {weights_only!r}")
    if map_location is not None and not str(map_location).startswith("cpu"):
        raise ValueError(f"load: tapegrad runs on the CPU only, got map_location={map_location!r}")
    if hasattr(path, "read"):
        name = getattr(path, "name", None)
        name = name if isinstance(name, str) else type(path).__name__
        f, close = path, False
    else:
        name = os.fspath(path)
        f, close = _open_regular(name), True
    try:
        size = f.seek(0, os.SEEK_END) if close else _check_file_object(f, name)
    except BaseException:
        if close:
            f.close()
        raise
    try:
        return _load_from(f, size)
    except _Bad as e:
        raise ValueError(f"load: {name} is not a readable tapegrad checkpoint ({e})") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, UnicodeDecodeError, ValueError,
            struct.error) as e:
        raise ValueError(f"load: {name} is not a readable tapegrad checkpoint ({type(e).__name__}: {e})") from None
    finally:
        if close:
            f.close()
