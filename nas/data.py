"""Datasets held in memory as uint8 tensors: the embedded default Fashion-MNIST, CIFAR-10/100 and
ImageFolder-style directories.

`load_dataset(spec)` takes a name or a path:

* ``fashion-mnist`` (the default): the four IDX files ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``,
  found in ``$NAS_DATA_DIR`` (or its ``fashion-mnist/``), ``~/.cache/nas/data/fashion-mnist`` or
  ``/usr/share/datasets/fashion-mnist`` (Debian package ``dataset-fashion-mnist``);
* ``cifar10`` / ``cifar100``: the python-pickle layouts ``cifar-10-batches-py/`` and ``cifar-100-python/``
  under ``$NAS_DATA_DIR`` or ``~/.cache/nas/data``;
* a path: a directory holding any of the above, or an ImageFolder ``root/train/<class>/*.png|jpg`` with
  ``root/val/`` or ``root/test/`` as the held-out split.

Nothing is ever downloaded: a missing dataset raises DataError saying where to get it.

Decoding (gunzip, unpickling, image files) is done once per source: a dataset of 8 MiB or more is kept decoded in
``~/.cache/hybrid-nas/decoded/`` (``$XDG_CACHE_HOME``; ``NAS_DATA_CACHE=DIR`` names another folder, ``0`` turns it
off) and read back while its source files keep their paths, sizes and modification times (`_decoded`). A kept
copy whose sources are gone (a moved or deleted dataset) is removed when another dataset is kept.

Splits: `train_val_indices` carves the validation split out of the *training* set (seeded, class-balanced);
the test split is only read for a final number, never for a search decision.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import json
import os
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nas.errors import DataError

DEFAULT_DATASET = "fashion-mnist"
NAMES = ("fashion-mnist", "cifar10", "cifar100")
SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
                         "bag", "ankle boot")
_IDX_FILES = {"train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
              "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte"}
_CIFAR_DIRS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
_CIFAR_ARCHIVES = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass(frozen=True, eq=False)
class ImageData:
    """A whole dataset in memory: images uint8 [N, C, H, W], labels int64 [N]; test split may be absent."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor | None
    test_y: torch.Tensor | None
    num_classes: int
    classes: tuple[str, ...]
    source: str
    test_source: str = "test split"  # or "held-out" when carved from a dataset without one (`with_held_out`)

    def __post_init__(self) -> None:
        present = torch.unique(self.train_y).tolist()
        if len(present) < 2:
            names = ", ".join(self.classes[i] if 0 <= i < len(self.classes) else str(i) for i in present)
            raise DataError(f"dataset {self.name!r} ({self.source}) has {len(present)} class"
                            f"{'' if len(present) == 1 else 'es'} in its training split ({names or 'no images'}); "
                            "a classifier needs at least 2",
                            "give it images of two or more classes (an ImageFolder: one train/<class>/ "
                            "directory of images per class)")

    @property
    def in_chans(self) -> int:
        return int(self.train_x.shape[1])

    def __repr__(self) -> str:
        n_test = 0 if self.test_x is None else len(self.test_x)
        return (f"ImageData({self.name!r}, train={len(self.train_x)}, test={n_test}, classes={self.num_classes}, "
                f"shape={tuple(self.train_x.shape[1:])}, source={self.source!r})")


def data_roots() -> list[Path]:
    """Where dataset names are looked up, first hit wins: $NAS_DATA_DIR, then ~/.cache/nas/data."""
    roots = []
    if os.environ.get("NAS_DATA_DIR"):
        roots.append(Path(os.environ["NAS_DATA_DIR"]).expanduser())
    roots.append(Path.home() / ".cache" / "nas" / "data")
    return roots


HELD_OUT_FRACTION = 0.1
HELD_OUT_SEED = 20261201


def with_held_out(data: ImageData, *, fraction: float = HELD_OUT_FRACTION) -> ImageData:
    """A dataset without a test split gets one: a fixed, class-stratified `fraction` of its training images,
    taken out of the training set, so that no search decision (which validates on a part of the training
    set) and no training ever sees it. Datasets with a test split are returned unchanged."""
    if data.test_x is not None:
        return data
    g = torch.Generator().manual_seed(HELD_OUT_SEED)
    hold = []
    for c in torch.unique(data.train_y).tolist():
        idx = torch.nonzero(data.train_y == c).flatten()
        k = int(len(idx) * fraction)
        hold.append(idx[torch.randperm(len(idx), generator=g)[:k]])
    held = torch.cat(hold).sort().values if hold else torch.zeros(0, dtype=torch.long)
    keep = torch.ones(len(data.train_y), dtype=torch.bool)
    keep[held] = False
    if not len(held) or keep.sum() < 2:
        return data
    return dataclasses.replace(data, train_x=data.train_x[keep], train_y=data.train_y[keep], test_x=data.train_x[held],
                               test_y=data.train_y[held], test_source=f"held-out {fraction:.0%} of the training images")


def load_dataset(spec: str | os.PathLike | None = None) -> ImageData:
    """Load a dataset by name (fashion-mnist, cifar10, cifar100) or directory path; DataError if absent.
    A dataset without a test split gets a held-out one (`with_held_out`)."""
    spec = DEFAULT_DATASET if spec is None or str(spec) == "" else spec
    s = str(spec)
    key = s.lower().replace("_", "-")
    if key in ("fashion-mnist", "fashionmnist", "fmnist"):
        return _load_fashion_mnist()
    if key in ("cifar10", "cifar-10", "cifar100", "cifar-100"):
        name = "cifar10" if "100" not in key else "cifar100"
        for root in data_roots():
            for d in (root / _CIFAR_DIRS[name], root):
                if _cifar_kind(d) == name:
                    return _load_cifar(d, name)
            _refuse_partial_cifar(root / _CIFAR_DIRS[name])
        where = " or ".join(str(r) for r in data_roots())
        url = "https://www.cs.toronto.edu/~kriz/" + _CIFAR_ARCHIVES[name]
        raise DataError(f"dataset {name!r} not found (looked for {_CIFAR_DIRS[name]}/ under {where})",
                        f"download {url} and extract it into {data_roots()[0]} (or set NAS_DATA_DIR), "
                        f"or pass --data PATH/{_CIFAR_DIRS[name]}")
    p = Path(s).expanduser()
    if not p.exists():
        raise DataError(f"unknown dataset {s!r}: not a dataset name and no such directory",
                        f"use one of {', '.join(NAMES)} or the path of a dataset directory")
    if not p.is_dir():
        raise DataError(f"--data {s!r} is a file, not a dataset directory",
                        "pass the directory holding the IDX files, the CIFAR batches or train/<class>/ images")
    return with_held_out(load_directory(p))


def load_directory(path: Path) -> ImageData:
    """Detect the layout of a dataset directory and load it."""
    if _find_idx(path) is not None:
        return _read_idx_dir(path, name=path.name or "idx")
    for sub in (path, path / _CIFAR_DIRS["cifar10"], path / _CIFAR_DIRS["cifar100"]):
        kind = _cifar_kind(sub)
        if kind is not None:
            return _load_cifar(sub, kind)
    if (path / "train").is_dir():
        return _load_image_folder(path)
    for sub in (path, path / _CIFAR_DIRS["cifar10"], path / _CIFAR_DIRS["cifar100"]):
        _refuse_partial_cifar(sub)
    raise DataError(f"{path} holds no dataset this tool can read",
                    "expected the 4 Fashion-MNIST IDX files, cifar-10-batches-py/ or cifar-100-python/ files, "
                    "or an ImageFolder train/<class>/*.png with val/ or test/")


# ---------------------------------------------------------------------------------------------------------
# Fashion-MNIST (IDX)


def _load_fashion_mnist() -> ImageData:
    candidates: list[Path] = []
    for root in data_roots():
        candidates += [root, root / "fashion-mnist"]
    candidates.append(SYSTEM_FASHION_MNIST)
    for d in candidates:
        if _find_idx(d) is not None:
            return _read_idx_dir(d, name="fashion-mnist", classes=FASHION_MNIST_CLASSES)
    raise DataError("dataset 'fashion-mnist' not found (looked in " + ", ".join(map(str, candidates)) + ")",
                    "run `apt-get install dataset-fashion-mnist`, or put the 4 files "
                    "{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz in a directory and set NAS_DATA_DIR to it")


def _find_idx(d: Path) -> dict[str, Path] | None:
    """The four IDX files of `d` (gzipped or not), or None when one is missing."""
    if not d.is_dir():
        return None
    found = {}
    for key, stem in _IDX_FILES.items():
        for cand in (d / f"{stem}.gz", d / stem):
            if cand.is_file():
                found[key] = cand
                break
        else:
            return None
    return found


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped): magic 0x0000 0x08 (uint8) ndim, then big-endian int32 dims."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {path}: {e}", "re-download or re-install the dataset") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not a uint8 IDX file (bad magic number)", "check the file is a genuine IDX file")
    ndim = raw[3]
    dims = tuple(int(x) for x in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    n = int(np.prod(dims))
    if len(raw) - 4 - 4 * ndim != n:
        raise DataError(f"{path} is truncated: header says {dims}, {len(raw) - 4 - 4 * ndim} bytes of data",
                        "re-download or re-install the dataset")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _read_idx_dir(d: Path, *, name: str, classes: Sequence[str] | None = None) -> ImageData:
    files = _find_idx(d)
    assert files is not None
    return _decoded(f"idx:{name}:{classes}", list(files.values()), lambda: _decode_idx(d, files, name, classes))


def _decode_idx(d: Path, files: dict[str, Path], name: str, classes: Sequence[str] | None) -> ImageData:
    arr = {k: read_idx(p) for k, p in files.items()}
    for k in ("train_x", "test_x"):
        if arr[k].ndim != 3:
            raise DataError(f"{files[k]} holds shape {arr[k].shape}, expected [N, H, W] images")
    for x, y in (("train_x", "train_y"), ("test_x", "test_y")):
        if len(arr[x]) != len(arr[y]):
            raise DataError(f"{files[x].name} has {len(arr[x])} images but {files[y].name} {len(arr[y])} labels")
    num_classes = int(max(arr["train_y"].max(), arr["test_y"].max())) + 1
    if classes is None or len(classes) != num_classes:
        classes = tuple(str(i) for i in range(num_classes))
    return ImageData(name=name,
                     train_x=torch.from_numpy(arr["train_x"].copy()).unsqueeze(1),
                     train_y=torch.from_numpy(arr["train_y"].astype(np.int64)),
                     test_x=torch.from_numpy(arr["test_x"].copy()).unsqueeze(1),
                     test_y=torch.from_numpy(arr["test_y"].astype(np.int64)),
                     num_classes=num_classes, classes=tuple(classes), source=str(d))


# ---------------------------------------------------------------------------------------------------------
# CIFAR (python pickle batches)


# the files each CIFAR layout needs (`_cifar_kind`) and those that only it has, to tell a partial folder
_CIFAR_NEEDS = {"cifar10": ("data_batch_1", "test_batch"), "cifar100": ("train", "test", "meta")}
_CIFAR_MARKS = {"cifar10": ("data_batch_", "test_batch", "batches.meta"), "cifar100": ("meta",)}


def _cifar_kind(d: Path) -> str | None:
    for kind, needs in _CIFAR_NEEDS.items():
        if all((d / f).is_file() for f in needs):
            return kind
    return None


def _refuse_partial_cifar(d: Path) -> None:
    """DataError naming the missing files when `d` holds some of a CIFAR layout's files but not all it needs
    (an archive extracted in part), so the message is not the generic 'no dataset'."""
    if not d.is_dir():
        return
    names = {p.name for p in d.iterdir() if p.is_file()}
    for kind, marks in _CIFAR_MARKS.items():
        if not any(n.startswith(m) for n in names for m in marks):
            continue
        missing = [f for f in _CIFAR_NEEDS[kind] if f not in names]
        if missing:
            raise DataError(f"{d} looks like a {kind} folder ({_CIFAR_DIRS[kind]}/) but lacks "
                            f"{', '.join(missing)}", f"re-extract {_CIFAR_ARCHIVES[kind]} there")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="latin1")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as e:
        raise DataError(f"cannot read CIFAR file {path}: {e}", "re-extract the CIFAR archive") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path} is not a CIFAR batch (expected a pickled dict)")
    return obj


def _cifar_arrays(batch: dict, path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except KeyError as e:
        raise DataError(f"CIFAR file {path} lacks key {e}", "re-extract the CIFAR archive") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DataError(f"CIFAR file {path} holds data of shape {data.shape}, expected [N, 3072]")
    return data.reshape(-1, 3, 32, 32), labels


def _load_cifar(d: Path, name: str) -> ImageData:
    if name == "cifar10":
        batches, rest = sorted(d.glob("data_batch_*"), key=lambda p: p.name), ("test_batch", "batches.meta")
    else:
        batches, rest = [d / "train"], ("test", "meta")
    files = [*batches, *(d / f for f in rest)]
    return _decoded(f"cifar:{name}", [p for p in files if p.is_file()], lambda: _decode_cifar(d, name, batches))


def _decode_cifar(d: Path, name: str, batches: list[Path]) -> ImageData:
    if name == "cifar10":
        parts = [_cifar_arrays(_unpickle(p), p, "labels") for p in batches]
        test = _cifar_arrays(_unpickle(d / "test_batch"), d / "test_batch", "labels")
        meta = _unpickle(d / "batches.meta") if (d / "batches.meta").is_file() else {}
        classes = tuple(meta.get("label_names", ())) or tuple(str(i) for i in range(10))
        num_classes = 10
    else:
        parts = [_cifar_arrays(_unpickle(p), p, "fine_labels") for p in batches]
        test = _cifar_arrays(_unpickle(d / "test"), d / "test", "fine_labels")
        classes = tuple(_unpickle(d / "meta").get("fine_label_names", ())) or tuple(str(i) for i in range(100))
        num_classes = 100
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    num_classes = max(num_classes, int(y.max()) + 1)
    if len(classes) != num_classes:
        classes = tuple(str(i) for i in range(num_classes))
    return ImageData(name=name, train_x=torch.from_numpy(x), train_y=torch.from_numpy(y),
                     test_x=torch.from_numpy(test[0]), test_y=torch.from_numpy(test[1]),
                     num_classes=num_classes, classes=classes, source=str(d))


# ---------------------------------------------------------------------------------------------------------
# ImageFolder


def _list_images(split_dir: Path, classes: Sequence[str]) -> list[tuple[Path, int]]:
    items = []
    for i, c in enumerate(classes):
        cdir = split_dir / c
        if cdir.is_dir():
            items += [(p, i) for p in sorted(cdir.iterdir()) if p.suffix.lower() in _IMAGE_SUFFIXES]
    return items


def _load_image_folder(root: Path) -> ImageData:
    """root/train/<class>/*.png|jpg (+ root/val or root/test). Images of differing sizes are centre-cropped
    square and resized to the smallest side found; grey-only folders stay 1-channel, otherwise RGB."""
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{root / 'train'} has no class sub-directories", "lay it out as train/<class>/*.png")
    train_items = _list_images(root / "train", classes)
    if not train_items:
        raise DataError(f"{root / 'train'} holds no images ({', '.join(_IMAGE_SUFFIXES)})")
    held_dir = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
    test_items = _list_images(held_dir, classes) if held_dir is not None else []
    return _decoded(f"imagefolder:{classes}", [p for p, _ in train_items + test_items],
                    lambda: _decode_image_folder(root, classes, train_items, test_items))


def _decode_image_folder(root: Path, classes: Sequence[str], train_items: list[tuple[Path, int]],
                         test_items: list[tuple[Path, int]]) -> ImageData:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        raise DataError("reading an image folder needs Pillow", "pip install pillow") from None

    images = []
    for path, _ in train_items + test_items:
        try:
            with Image.open(path) as im:
                im.load()
                images.append(im.copy())
        except OSError as e:
            raise DataError(f"cannot read image {path}: {e}", "remove or replace that file") from None
    grey = all(im.mode in ("L", "1", "I;16", "I") for im in images)
    mode = "L" if grey else "RGB"
    sizes = {im.size for im in images}
    side = None if len(sizes) == 1 else min(min(s) for s in sizes)
    arrays = []
    for im in images:
        im = im.convert(mode)
        if side is not None:
            w, h = im.size
            s = min(w, h)
            im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
            im = im.resize((side, side), Image.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
        arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    x = torch.from_numpy(np.stack(arrays))
    y = torch.tensor([c for _, c in train_items + test_items], dtype=torch.int64)
    n = len(train_items)
    return ImageData(name=root.name or "imagefolder", train_x=x[:n], train_y=y[:n],
                     test_x=x[n:] if test_items else None, test_y=y[n:] if test_items else None,
                     num_classes=len(classes), classes=tuple(classes), source=str(root))


# ---------------------------------------------------------------------------------------------------------
# The decoded cache

# Datasets this large or larger are kept decoded: Fashion-MNIST (55 MB) takes 0.41 s to gunzip and 0.04 s to read
# back (bench/data_load.py); a test's few images are not worth a file.
DECODED_MIN_BYTES = 8 * 2**20
DECODED_FORMAT = 1  # raise when what a decoder returns changes, so older files are decoded again


def decoded_cache_dir() -> Path | None:
    """Where decoded datasets are kept: $NAS_DATA_CACHE (None where it is "0"), else
    $XDG_CACHE_HOME/hybrid-nas/decoded (~/.cache when unset)."""
    env = os.environ.get("NAS_DATA_CACHE", "")
    if env == "0":
        return None
    if env:
        return Path(env).expanduser()
    from nas.blas import cache_dir  # the project's user cache folder (the MKL shim is built there too)

    return cache_dir() / "decoded"


def _decoded(kind: str, sources: Sequence[Path], decode: Callable[[], ImageData]) -> ImageData:
    """`decode()`'s dataset, read back from the decoded cache where an earlier process kept it from the same
    `sources` (paths, sizes and modification times: a re-installed or edited dataset is decoded again). One file
    per source and `kind`; a missing, damaged or unwritable cache only means decoding, never an error."""
    root = decoded_cache_dir()
    if root is None or not sources:
        return decode()
    try:
        seen = [(str(p.absolute()), st.st_size, st.st_mtime_ns) for p in sources for st in (p.stat(),)]
    except OSError:
        return decode()
    where = hashlib.sha256(json.dumps([kind, [s[0] for s in seen]]).encode()).hexdigest()[:16]
    stamp = hashlib.sha256(json.dumps([DECODED_FORMAT, kind, seen]).encode()).hexdigest()
    path = root / f"{kind.split(':')[0]}-{where}.pt"
    kept = _read_decoded(path, stamp)
    if kept is not None:
        if not path.with_suffix(".json").is_file():  # kept before copies had their sources beside them
            _write_sources(path, [s[0] for s in seen])
        return kept
    data = decode()
    if sum(t.numel() * t.element_size() for t in (data.train_x, data.test_x) if t is not None) >= DECODED_MIN_BYTES:
        _write_sources(path, [s[0] for s in seen])  # first: a copy never lies without its sources, even if killed
        _write_decoded(path, stamp, data)
        _prune_decoded(root, keep=path)
    return data


def _read_decoded(path: Path, stamp: str) -> ImageData | None:
    try:
        saved = torch.load(path, weights_only=True)
        if not isinstance(saved, dict) or saved.get("stamp") != stamp:
            return None
        fields = saved["fields"]
        return ImageData(**{**fields, "classes": tuple(fields["classes"])})
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError):
        return None  # none yet, damaged or of another format: decoded (again) and replaced


def _write_decoded(path: Path, stamp: str, data: ImageData) -> None:
    from nas.results import atomic_write

    fields = {f.name: getattr(data, f.name) for f in dataclasses.fields(data)}
    fields["classes"] = list(data.classes)
    # whole or not at all, also with two processes decoding at once; a read-only or full cache: decoded again
    with contextlib.suppress(OSError):
        atomic_write(path, lambda tmp: torch.save({"stamp": stamp, "fields": fields}, tmp))


def _write_sources(path: Path, sources: list[str]) -> None:
    """Beside a kept dataset, the source paths it was decoded from (`_prune_decoded` reads them), written whole
    or not at all."""
    from nas.results import atomic_write_text

    with contextlib.suppress(OSError):
        atomic_write_text(path.with_suffix(".json"), json.dumps({"sources": sources}))


def _prune_decoded(root: Path, keep: Path) -> None:
    """Remove the kept datasets whose sources are gone (a moved or deleted dataset would otherwise leave its
    decoded copy behind for good), and temporary files a killed process left more than an hour ago."""
    now = time.time()
    with contextlib.suppress(OSError):
        for f in root.iterdir():
            with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
                if f.name.startswith(".") and f.name.endswith(".tmp") and now - f.stat().st_mtime > 3600:
                    f.unlink()
                elif f.suffix == ".json" and f.with_suffix(".pt") != keep:
                    if not all(Path(s).exists() for s in json.loads(f.read_text())["sources"]):
                        f.with_suffix(".pt").unlink(missing_ok=True)
                        f.unlink()


# ---------------------------------------------------------------------------------------------------------
# Splits


def train_val_indices(labels: torch.Tensor, *, val_images: int, train_images: int | None = None,
                      seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint (train, val) index tensors carved from the training set, deterministic in `seed` and
    class-balanced (a seeded shuffle, then classes interleaved), so a small val split has every class."""
    n = len(labels)
    if val_images < 1 or val_images >= n:
        raise DataError(f"val_images={val_images} must be between 1 and {n - 1} (the training set has {n})",
                        "lower val_images in the proxy config")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    y = labels[perm]
    order = torch.argsort(y, stable=True)
    sorted_y = y[order]
    starts = torch.searchsorted(sorted_y, sorted_y, right=False)
    rank = torch.empty(n, dtype=torch.long)
    rank[order] = torch.arange(n) - starts
    idx = perm[torch.argsort(rank, stable=True)]
    val = idx[:val_images]
    rest = idx[val_images:]
    if train_images is not None:
        if train_images < 1:
            raise DataError(f"train_images={train_images} must be >= 1", "raise train_images in the proxy config")
        rest = rest[:train_images]
    return rest, val
