"""Dataset loaders on small files written here in each real format (IDX gz, CIFAR pickle, ImageFolder)."""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from nas import data as nas_data
from nas.data import load_dataset, read_idx, train_val_indices
from nas.errors import DataError


def write_idx(path: Path, arr: np.ndarray, *, gz: bool = True) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}i", *arr.shape)
    blob = header + arr.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(blob)
    else:
        path.write_bytes(blob)


def make_idx_dir(d: Path, *, n_train: int = 40, n_test: int = 20, size: int = 28, gz: bool = True) -> Path:
    rng = np.random.default_rng(0)
    d.mkdir(parents=True, exist_ok=True)
    sfx = ".gz" if gz else ""
    write_idx(d / f"train-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n_train, size, size)), gz=gz)
    write_idx(d / f"train-labels-idx1-ubyte{sfx}", np.arange(n_train) % 10, gz=gz)
    write_idx(d / f"t10k-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n_test, size, size)), gz=gz)
    write_idx(d / f"t10k-labels-idx1-ubyte{sfx}", np.arange(n_test) % 10, gz=gz)
    return d


def test_idx_directory_by_path(tmp_path):
    d = make_idx_dir(tmp_path / "fm")
    ds = load_dataset(d)
    assert ds.train_x.shape == (40, 1, 28, 28) and ds.train_x.dtype == torch.uint8
    assert ds.train_y.dtype == torch.int64 and ds.train_y.tolist()[:11] == list(range(10)) + [0]
    assert ds.test_x.shape == (20, 1, 28, 28)
    assert ds.num_classes == 10 and ds.in_chans == 1
    raw = read_idx(d / "train-images-idx3-ubyte.gz")
    assert torch.equal(ds.train_x[:, 0], torch.from_numpy(raw.copy()))


def test_uncompressed_idx_files(tmp_path):
    ds = load_dataset(make_idx_dir(tmp_path / "raw", gz=False))
    assert ds.train_x.shape == (40, 1, 28, 28)


def test_fashion_mnist_name_honours_nas_data_dir(tmp_path, monkeypatch):
    make_idx_dir(tmp_path / "fashion-mnist", n_train=30)
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path))
    ds = load_dataset("fashion-mnist")
    assert ds.name == "fashion-mnist" and len(ds.train_x) == 30
    assert ds.classes[0] == "t-shirt/top"


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(nas_data, "SYSTEM_FASHION_MNIST", tmp_path / "absent")
    with pytest.raises(DataError) as e:
        load_dataset()
    assert "apt-get install dataset-fashion-mnist" in str(e.value)


def test_truncated_idx_is_a_data_error(tmp_path):
    d = make_idx_dir(tmp_path / "bad")
    p = d / "train-images-idx3-ubyte.gz"
    blob = gzip.decompress(p.read_bytes())
    p.write_bytes(gzip.compress(blob[:-100]))
    with pytest.raises(DataError, match="truncated"):
        load_dataset(d)


def _cifar_batch(n: int, label_key: str, num_classes: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), label_key: [i % num_classes for i in range(n)]}


def test_cifar10_layout(tmp_path, monkeypatch):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    batches = []
    for i in range(1, 3):
        b = _cifar_batch(6, "labels", 10, i)
        batches.append(b)
        (d / f"data_batch_{i}").write_bytes(pickle.dumps(b))
    (d / "test_batch").write_bytes(pickle.dumps(_cifar_batch(4, "labels", 10, 9)))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (d / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path))
    for spec in ("cifar10", d, tmp_path):
        ds = load_dataset(spec)
        assert ds.name == "cifar10" and ds.train_x.shape == (12, 3, 32, 32) and ds.test_x.shape == (4, 3, 32, 32)
        assert ds.classes == tuple(names) and ds.num_classes == 10
    # row-major 3072 bytes = R plane, G plane, B plane of 32x32
    first = batches[0]["data"][0]
    assert torch.equal(ds.train_x[0, 1, 0], torch.from_numpy(first[1024:1056]))


def test_cifar100_layout(tmp_path):
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    (d / "train").write_bytes(pickle.dumps(_cifar_batch(10, "fine_labels", 100, 1)))
    (d / "test").write_bytes(pickle.dumps(_cifar_batch(5, "fine_labels", 100, 2)))
    (d / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)]}))
    ds = load_dataset(tmp_path)
    assert ds.name == "cifar100" and ds.num_classes == 100 and ds.train_x.shape == (10, 3, 32, 32)


def test_missing_cifar_names_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(DataError) as e:
        load_dataset("cifar100")
    assert "cifar-100-python" in str(e.value) and str(tmp_path) in str(e.value)


def test_image_folder_png(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("val", 2)):
        for c in ("cat", "dog"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(tmp_path / split / c / f"{i}.png")
    ds = load_dataset(tmp_path)
    assert ds.classes == ("cat", "dog") and ds.in_chans == 3
    assert ds.train_x.shape == (6, 3, 12, 12) and ds.test_x.shape == (4, 3, 12, 12)
    assert ds.train_y.tolist() == [0, 0, 0, 1, 1, 1]
    saved = np.array(Image.open(tmp_path / "train" / "dog" / "0.png"))
    assert torch.equal(ds.train_x[3], torch.from_numpy(saved).permute(2, 0, 1))


def test_image_folder_mixed_sizes_grey(tmp_path):
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / "train" / c).mkdir(parents=True)
    Image.new("L", (10, 14), 7).save(tmp_path / "train" / "a" / "x.png")
    Image.new("L", (16, 16), 9).save(tmp_path / "train" / "b" / "y.jpg")
    ds = load_dataset(tmp_path)
    assert ds.train_x.shape == (2, 1, 10, 10) and ds.test_x is None


def _one_class_folder(root: Path, n: int = 700) -> Path:
    """An ImageFolder whose train/ holds a single class (and an empty second class directory)."""
    from PIL import Image

    for d in (root / "train" / "cat", root / "train" / "dog", root / "val" / "cat"):
        d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / "train" / "cat" / f"{i}.png")
    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / "val" / "cat" / "0.png")
    return root


def test_a_single_class_dataset_is_refused(tmp_path):
    root = _one_class_folder(tmp_path / "cats")
    with pytest.raises(DataError, match=r"has 1 class in its training split \(cat\); a classifier needs at least 2") as e:
        load_dataset(root)
    assert "train/<class>/" in e.value.hint
    labels = torch.zeros(40, dtype=torch.int64)
    with pytest.raises(DataError, match="needs at least 2"):
        nas_data.ImageData(name="x", train_x=torch.zeros(40, 1, 8, 8, dtype=torch.uint8), train_y=labels,
                           test_x=None, test_y=None, num_classes=10, classes=tuple("0123456789"), source="memory")


def test_a_single_class_dataset_is_one_message_from_the_cli(tmp_path, capsys):
    from nas.cli import main

    root = _one_class_folder(tmp_path / "cats")
    assert main(["train", "mobilevit_xxs", "--data", str(root), "--no-progress"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"nas train: error: dataset 'cats' ({root}) has 1 class in its training split (cat); "
                   "a classifier needs at least 2",
                   "  fix: give it images of two or more classes (an ImageFolder: one train/<class>/ directory "
                   "of images per class)"]


def test_unknown_name_and_bad_directory(tmp_path):
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("imagenet-22k")
    with pytest.raises(DataError, match="holds no dataset"):
        load_dataset(tmp_path)
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(DataError, match="is a file"):
        load_dataset(f)


def test_train_val_split_is_seeded_disjoint_and_balanced():
    labels = torch.arange(1000) % 10
    tr, va = train_val_indices(labels, val_images=100, train_images=300, seed=3)
    tr2, va2 = train_val_indices(labels, val_images=100, train_images=300, seed=3)
    assert torch.equal(tr, tr2) and torch.equal(va, va2)
    assert len(tr) == 300 and len(va) == 100 and not set(tr.tolist()) & set(va.tolist())
    assert labels[va].bincount().tolist() == [10] * 10
    assert labels[tr].bincount().tolist() == [30] * 10
    _, va3 = train_val_indices(labels, val_images=100, seed=4)
    assert not torch.equal(va, va3)
    with pytest.raises(DataError):
        train_val_indices(labels, val_images=1000)


def test_a_dataset_without_test_split_gets_a_held_out_one():
    """The confirm stage scores on a test split; a dataset without one gets a fixed, stratified 10% of its
    training images, removed from training so no search decision and no training ever sees them."""
    import torch

    from nas.data import ImageData, with_held_out

    y = torch.arange(200) % 4
    x = torch.arange(200, dtype=torch.uint8).view(200, 1, 1, 1).expand(200, 1, 4, 4).contiguous()
    d = ImageData(name="d", train_x=x, train_y=y, test_x=None, test_y=None, num_classes=4,
                  classes=("a", "b", "c", "d"), source="mem")
    h = with_held_out(d)
    assert len(h.test_y) == 20 and len(h.train_y) == 180 and h.test_source.startswith("held-out")
    assert torch.bincount(h.test_y).tolist() == [5, 5, 5, 5]
    seen = set(h.train_x[:, 0, 0, 0].tolist())
    assert not seen & set(h.test_x[:, 0, 0, 0].tolist())  # disjoint from the training images
    assert torch.equal(with_held_out(d).test_x, h.test_x)  # fixed: the same split every time
    assert with_held_out(h) is h  # a dataset with a test split is unchanged


def test_a_partly_extracted_cifar_folder_names_the_files_it_lacks(tmp_path, monkeypatch, capsys):
    """A CIFAR folder missing a file the layout needs is named as such, with the files it lacks, whether it is
    passed by path, found under a parent directory or by name under NAS_DATA_DIR; from the CLI it is one message
    and exit 2."""
    from nas.cli import main

    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    (d / "data_batch_2").write_bytes(pickle.dumps(_cifar_batch(6, "labels", 10, 2)))
    (d / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in range(10)]}))
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path))
    for spec in (d, tmp_path, "cifar10"):
        with pytest.raises(DataError) as e:
            load_dataset(spec)
        assert f"{d} looks like a cifar10 folder (cifar-10-batches-py/) but lacks data_batch_1, test_batch" \
            in e.value.message and e.value.hint == "re-extract cifar-10-python.tar.gz there", spec
    (d / "data_batch_1").write_bytes(pickle.dumps(_cifar_batch(6, "labels", 10, 1)))
    with pytest.raises(DataError, match="lacks test_batch\n"):
        load_dataset(d)
    c = tmp_path / "c100" / "cifar-100-python"
    c.mkdir(parents=True)
    (c / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)]}))
    (c / "test").write_bytes(pickle.dumps(_cifar_batch(5, "fine_labels", 100, 2)))
    with pytest.raises(DataError, match="looks like a cifar100 folder .* but lacks train\n"):
        load_dataset(tmp_path / "c100")
    capsys.readouterr()
    assert main(["train", "mobilevit_xxs", "--data", str(d)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "lacks test_batch" in err[0] and err[1].strip().startswith("fix: re-extract"), err


def _fields(ds) -> tuple:
    return (ds.name, ds.classes, ds.num_classes, ds.source, ds.test_source)


def _same(a, b) -> bool:
    return _fields(a) == _fields(b) and all(
        (x is None and y is None) or torch.equal(x, y)
        for x, y in ((a.train_x, b.train_x), (a.train_y, b.train_y), (a.test_x, b.test_x), (a.test_y, b.test_y)))


@pytest.fixture()
def decoded_cache(tmp_path, monkeypatch):
    """The decoded cache in a folder of this test's, for datasets of any size."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("NAS_DATA_CACHE", raising=False)
    monkeypatch.setattr(nas_data, "DECODED_MIN_BYTES", 0)
    return tmp_path / "xdg" / "hybrid-nas" / "decoded"


def test_a_decoded_dataset_is_read_back_without_its_sources_and_decoded_again_when_they_change(
        tmp_path, monkeypatch, decoded_cache):
    d = make_idx_dir(tmp_path / "fm")
    first = load_dataset(d)
    assert [p.name.split("-")[0] for p in decoded_cache.glob("*.pt")] == ["idx"]

    def no_decoding(path):
        raise AssertionError(f"{path} decoded again")

    with monkeypatch.context() as m:  # the second process reads the cache, not the gzipped files
        m.setattr(nas_data, "read_idx", no_decoding)
        again = load_dataset(d)
    assert _same(first, again)

    write_idx(d / "train-labels-idx1-ubyte.gz", (np.arange(40) + 3) % 10)  # the dataset is edited
    edited = load_dataset(d)
    assert edited.train_y.tolist()[:3] == [3, 4, 5] and torch.equal(edited.train_x, first.train_x)
    assert len(list(decoded_cache.glob("*.pt"))) == 1  # replaced, not added

    # the same files under another name are another dataset (its name and classes differ)
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path))
    shutil.copytree(tmp_path / "fm", tmp_path / "fashion-mnist")
    fm = load_dataset("fashion-mnist")
    assert fm.name == "fashion-mnist" and fm.classes == nas_data.FASHION_MNIST_CLASSES
    assert _same(fm, load_dataset("fashion-mnist")) and len(list(decoded_cache.glob("*.pt"))) == 2

    # a moved dataset is decoded at its new place, and its copy from the old place removed with it
    old = {p.name for p in decoded_cache.glob("*.pt")}
    (tmp_path / "fm").rename(tmp_path / "fm-moved")
    moved = load_dataset(tmp_path / "fm-moved")
    assert torch.equal(moved.train_y, edited.train_y) and torch.equal(moved.train_x, edited.train_x)
    now = {p.name for p in decoded_cache.glob("*.pt")}
    assert len(now) == 2 and len(now & old) == 1 and len(list(decoded_cache.glob("*.json"))) == 2


def test_a_copy_kept_without_its_sources_gets_them_and_a_killed_write_leaves_them(tmp_path, monkeypatch,
                                                                                 decoded_cache):
    """A copy kept before copies had their sources beside them gets its sources file when it is read, so it is
    pruned once its dataset moves; the sources file is written before the copy, so a process killed while
    writing the copy leaves no copy without one."""
    d = make_idx_dir(tmp_path / "fm")
    load_dataset(d)
    (src,) = decoded_cache.glob("*.json")
    src.unlink()  # as a copy kept before 1c75eb7
    load_dataset(d)
    assert src.is_file() and str(d.absolute()) in src.read_text()
    d.rename(tmp_path / "fm-moved")
    load_dataset(tmp_path / "fm-moved")
    assert len(list(decoded_cache.glob("*.pt"))) == 1 and src.with_suffix(".pt").exists() is False

    def killed(*_a):
        raise KeyboardInterrupt

    e = make_idx_dir(tmp_path / "other")
    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(nas_data, "_write_decoded", killed)
        load_dataset(e)
    assert len(list(decoded_cache.glob("*.json"))) == 2 and not list(decoded_cache.glob(".*.tmp"))


def test_cifar_and_image_folders_are_kept_decoded_too(tmp_path, monkeypatch, decoded_cache):
    from PIL import Image

    d = tmp_path / "c" / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for i in (1, 2):
        (d / f"data_batch_{i}").write_bytes(pickle.dumps(_cifar_batch(6, "labels", 10, i)))
    (d / "test_batch").write_bytes(pickle.dumps(_cifar_batch(4, "labels", 10, 9)))
    rng = np.random.default_rng(0)
    f = tmp_path / "f"
    for c in ("cat", "dog"):
        (f / "train" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(f / "train" / c / f"{i}.png")
    cifar, folder = load_dataset(d), load_dataset(f)
    assert folder.train_x.shape == (6, 3, 12, 12) and cifar.train_x.shape == (12, 3, 32, 32)
    with monkeypatch.context() as m:
        m.setattr(nas_data, "_unpickle", lambda p: pytest.fail(f"{p} unpickled again"))
        m.setattr(nas_data, "_decode_image_folder", lambda *a: pytest.fail("images decoded again"))
        assert _same(cifar, load_dataset(d)) and _same(folder, load_dataset(f))
    assert sorted(p.name.split("-")[0] for p in decoded_cache.glob("*.pt")) == ["cifar", "imagefolder"]
    Image.fromarray(np.zeros((12, 12, 3), dtype=np.uint8)).save(f / "train" / "dog" / "3.png")  # one image more
    assert len(load_dataset(f).train_x) == 7


def test_a_damaged_unwritable_or_disabled_cache_only_means_decoding(tmp_path, monkeypatch, decoded_cache):
    d = make_idx_dir(tmp_path / "fm")
    stale, recent = decoded_cache / ".idx-0.pt.1.tmp", decoded_cache / ".idx-0.pt.2.tmp"  # killed writers'
    decoded_cache.mkdir(parents=True)
    stale.write_bytes(b"x")
    recent.write_bytes(b"x")
    os.utime(stale, (time.time() - 7200,) * 2)
    fresh = load_dataset(d)
    assert not stale.exists() and recent.exists()  # an hour old: removed; a writer may still be at the other
    recent.unlink()
    (kept,) = decoded_cache.glob("*.pt")
    kept.write_bytes(b"not a torch file")  # damaged: decoded again, and replaced
    assert _same(fresh, load_dataset(d)) and _same(fresh, load_dataset(d))
    assert kept.stat().st_size > 1000

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("NAS_DATA_CACHE", str(blocked / "sub"))  # cannot be created: no error, no cache
    assert _same(fresh, load_dataset(d)) and not (blocked / "sub").exists()

    monkeypatch.setenv("NAS_DATA_CACHE", "0")
    kept.unlink()
    assert _same(fresh, load_dataset(d)) and not kept.exists()


def test_small_datasets_are_not_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("NAS_DATA_CACHE", raising=False)
    load_dataset(make_idx_dir(tmp_path / "fm"))  # 47 KB, under DECODED_MIN_BYTES
    assert not (tmp_path / "xdg").exists()
