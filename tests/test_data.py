"""The CIFAR-10 loader: every source format, the cache, and every bad input."""

import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bnlib import data as D

SHARED_ARCHIVE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / \
    "cifar10-jpeg.tar.gz"
PER_CLASS_TRAIN, PER_CLASS_TEST = 3, 1


def tiny_arrays(seed=0):
    """Tiny balanced CIFAR-like arrays, sorted by class like the folder reader."""
    rng = np.random.default_rng(seed)

    def make(per_class):
        labels = np.repeat(np.arange(10, dtype=np.int32), per_class)
        images = rng.integers(0, 256, size=(len(labels), 32, 32, 3), dtype=np.uint8)
        return images, labels

    return (*make(PER_CLASS_TRAIN), *make(PER_CLASS_TEST))


def write_python_batches(folder: Path, arrays) -> Path:
    """The official layout: cifar-10-batches-py/data_batch_1..5, test_batch."""
    x_train, y_train, x_test, y_test = arrays
    root = folder / "cifar-10-batches-py"
    root.mkdir(parents=True)

    def dump(name, x, y):
        flat = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
        with open(root / name, "wb") as handle:
            pickle.dump({b"data": flat, b"labels": [int(v) for v in y]}, handle)

    parts = np.array_split(np.arange(len(x_train)), 5)
    for i, part in enumerate(parts, start=1):
        dump(f"data_batch_{i}", x_train[part], y_train[part])
    dump("test_batch", x_test, y_test)
    return root


def write_image_tree(folder: Path, arrays, fmt="PNG") -> Path:
    x_train, y_train, x_test, y_test = arrays
    root = folder / "cifar10-images"
    for split, xs, ys in (("train", x_train, y_train), ("test", x_test, y_test)):
        for index, (image, label) in enumerate(zip(xs, ys)):
            target = root / split / D.CLASSES[label] / f"{index:04d}.{fmt.lower()}"
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(target, format=fmt)
    return root


def make_tar(source: Path, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        tar.add(source, arcname=source.name)
    return out


def load(source, tmp_path):
    return D.load_cifar10(source, cache_dir=tmp_path / "cache", sizes=None)


def assert_same(loaded, arrays):
    for got, want in zip(list(loaded)[:4], arrays):
        np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------- every format
def test_python_folder_and_archive_give_identical_arrays(tmp_path):
    arrays = tiny_arrays()
    folder = write_python_batches(tmp_path / "py", arrays)
    archive = make_tar(folder, tmp_path / "cifar-10-python.tar.gz")
    from_folder, from_archive = load(folder, tmp_path), load(archive, tmp_path)
    assert from_folder.provenance.kind == from_archive.provenance.kind == "python"
    assert_same(from_folder, arrays)
    assert_same(from_archive, arrays)
    assert from_archive.x_train.dtype == np.uint8
    assert from_archive.x_train.shape == (30, 32, 32, 3)


def test_png_tree_and_its_tarball_equal_the_python_batches(tmp_path):
    arrays = tiny_arrays(1)
    tree = write_image_tree(tmp_path / "img", arrays, "PNG")
    archive = make_tar(tree, tmp_path / "tree.tar.gz")
    python_archive = make_tar(write_python_batches(tmp_path / "py", arrays),
                              tmp_path / "cifar-10-python.tar.gz")
    for source in (tree, archive):
        loaded = load(source, tmp_path)
        assert loaded.provenance.kind == "folder"
        assert "PNG" in loaded.provenance.notes
        assert_same(loaded, arrays)
    assert_same(load(python_archive, tmp_path), arrays)


def test_jpeg_tree_is_labelled_lossy_and_close(tmp_path):
    arrays = tiny_arrays(2)
    smooth = [np.broadcast_to(x[:, :1, :1], x.shape).copy()  # flat colours
              for x in (arrays[0], arrays[2])]
    arrays = (smooth[0], arrays[1], smooth[1], arrays[3])
    loaded = load(write_image_tree(tmp_path / "jpg", arrays, "JPEG"), tmp_path)
    assert "lossy" in loaded.provenance.notes and "JPEG" in loaded.provenance.notes
    np.testing.assert_array_equal(loaded.y_train, arrays[1])
    assert np.abs(loaded.x_train.astype(int) - arrays[0]).mean() < 3


def test_synthetic_only_by_name_and_labelled(monkeypatch):
    monkeypatch.setenv(D.ENV_VAR, "synthetic")
    loaded = D.load_cifar10()
    assert loaded.provenance.kind == "synthetic"
    assert "SYNTHETIC" in loaded.provenance.describe()


def test_choice_order_argument_then_env_then_download(monkeypatch, tmp_path):
    monkeypatch.delenv(D.ENV_VAR, raising=False)
    assert D.resolve_source() == "keras"
    monkeypatch.setenv(D.ENV_VAR, "/somewhere")
    assert D.resolve_source() == "/somewhere"
    assert D.resolve_source("synthetic") == "synthetic"


def test_keras_download_failure_is_one_clear_error(monkeypatch):
    import keras

    def offline():
        raise OSError("no network")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    with pytest.raises(D.DataError, match="BNLIB_DATA"):
        D.load_cifar10("keras")


# ----------------------------------------------------------------- cache
def test_second_load_comes_from_the_cache(tmp_path, monkeypatch):
    archive = make_tar(write_python_batches(tmp_path / "py", tiny_arrays()),
                       tmp_path / "c.tar.gz")
    first = load(archive, tmp_path)
    cached = list((tmp_path / "cache").glob("*.npz"))
    assert len(cached) == 1 and first.provenance.sha256[:16] in cached[0].name

    def must_not_decode(*_):
        raise AssertionError("decoded again instead of using the cache")

    monkeypatch.setattr(D, "_read_python_batches", must_not_decode)
    monkeypatch.setattr(D, "detect_kind", must_not_decode)  # no listing either
    second = load(archive, tmp_path)
    assert_same(second, list(first)[:4])
    assert second.provenance == first.provenance


def test_a_damaged_cache_is_rebuilt(tmp_path):
    archive = make_tar(write_python_batches(tmp_path / "py", tiny_arrays()),
                       tmp_path / "c.tar.gz")
    load(archive, tmp_path)
    (cache_file,) = (tmp_path / "cache").glob("*.npz")
    cache_file.write_bytes(b"garbage")
    assert_same(load(archive, tmp_path), tiny_arrays())


# ----------------------------------------------------------------- bad inputs
def test_missing_path(tmp_path):
    with pytest.raises(D.DataError, match="does not exist.*BNLIB_DATA"):
        load(tmp_path / "nope.tar.gz", tmp_path)


def test_truncated_archive(tmp_path):
    archive = make_tar(write_image_tree(tmp_path / "img", tiny_arrays()),
                       tmp_path / "t.tar.gz")
    blob = archive.read_bytes()
    archive.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(D.DataError, match="truncated or corrupt"):
        load(archive, tmp_path)


def test_not_an_archive(tmp_path):
    bogus = tmp_path / "bogus.tar.gz"
    bogus.write_bytes(b"this is not a tarball")
    with pytest.raises(D.DataError, match="not a readable"):
        load(bogus, tmp_path)


def test_corrupt_image_inside_tree(tmp_path):
    tree = write_image_tree(tmp_path / "img", tiny_arrays())
    next(tree.rglob("*.png")).write_bytes(b"\x89PNG broken")
    with pytest.raises(D.DataError, match="not a readable image"):
        load(tree, tmp_path)


def test_wrong_image_size(tmp_path):
    tree = write_image_tree(tmp_path / "img", tiny_arrays())
    Image.new("RGB", (28, 28)).save(next(tree.rglob("*.png")), format="PNG")
    with pytest.raises(D.DataError, match="not 32x32"):
        load(tree, tmp_path)


def test_wrong_layout(tmp_path):
    folder = tmp_path / "flat"
    folder.mkdir()
    Image.new("RGB", (32, 32)).save(folder / "a.png")
    with pytest.raises(D.DataError, match="neither"):
        load(folder, tmp_path)


def test_tree_without_test_split(tmp_path):
    tree = write_image_tree(tmp_path / "img", tiny_arrays())
    for file in (tree / "test").rglob("*.png"):
        file.unlink()
    with pytest.raises(D.DataError, match="no test/<class>/ images"):
        load(tree, tmp_path)


def test_incomplete_python_batches(tmp_path):
    folder = write_python_batches(tmp_path / "py", tiny_arrays())
    (folder / "data_batch_3").unlink()
    with pytest.raises(D.DataError, match="data_batch_3"):
        load(folder, tmp_path)


def test_unbalanced_classes(tmp_path):
    x_train, y_train, x_test, y_test = tiny_arrays()
    y_train = y_train.copy()
    y_train[0] = 5
    folder = write_python_batches(tmp_path / "py", (x_train, y_train, x_test, y_test))
    with pytest.raises(D.DataError, match="unbalanced"):
        load(folder, tmp_path)


def test_a_tiny_copy_is_rejected_as_full_cifar10(tmp_path):
    folder = write_python_batches(tmp_path / "py", tiny_arrays())
    with pytest.raises(D.DataError, match="incomplete"):
        D.load_cifar10(folder, cache_dir=tmp_path / "cache")


def test_cli_reports_bad_data_with_exit_code(tmp_path, capsys):
    from bnlib.__main__ import main

    assert main(["data", "--data", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


# ----------------------------------------------------------------- the real copy
@pytest.mark.slow
@pytest.mark.skipif(not SHARED_ARCHIVE.exists(),
                    reason="../shared/data/cifar10-jpeg.tar.gz is not beside this checkout")
def test_real_offline_archive():
    loaded = D.load_cifar10(SHARED_ARCHIVE)
    assert loaded.provenance.kind == "folder"
    assert loaded.provenance.sha256 == (
        "5d2aad1f22ad457dd5fa041de6b9fab116e44282ddbd0db2c942d6271f20f9df")
    assert loaded.x_train.shape == (50_000, 32, 32, 3)
    assert loaded.x_test.shape == (10_000, 32, 32, 3)
    assert np.bincount(loaded.y_train).tolist() == [5000] * 10
    assert np.bincount(loaded.y_test).tolist() == [1000] * 10
    # the README's published means of the decoded training set
    means = loaded.x_train.reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(means, [125.27, 122.93, 113.86], atol=0.01)


def test_keras_source_reshapes_labels_and_says_where_it_came_from(monkeypatch):
    """The download path, with load_data stubbed (no network here): Keras gives
    labels as (N, 1) uint8; the loader returns flat int32 and labels the source."""
    import keras

    x_train, y_train, x_test, y_test = tiny_arrays(3)

    def fake_load_data():
        return ((x_train, y_train.reshape(-1, 1).astype(np.uint8)),
                (x_test, y_test.reshape(-1, 1).astype(np.uint8)))

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", fake_load_data)
    loaded = D.load_cifar10("keras", sizes=None)
    assert loaded.provenance.kind == "keras"
    assert "download" in loaded.provenance.describe()
    assert loaded.y_train.dtype == np.int32 and loaded.y_train.shape == (30,)
    assert_same(loaded, (x_train, y_train, x_test, y_test))
