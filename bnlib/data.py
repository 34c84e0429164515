"""CIFAR-10 from every source the book supports, decoded once and cached.

Sources (the ``kind`` of a :class:`Provenance`):

``python``
    The official "python version": a ``cifar-10-batches-py/`` folder or the
    ``cifar-10-python.tar.gz`` archive that holds it.
``folder``
    An image-folder tree ``{train,test}/<class>/*.jpg|png`` or a ``.tar.gz`` of
    one, e.g. the offline JPEG copy ``../shared/data/cifar10-jpeg.tar.gz``.
``keras``
    ``keras.datasets.cifar10.load_data()``, which downloads (needs a network).
``synthetic``
    Random class-colored images, only when asked for by name; every result
    made from it says ``synthetic`` in its provenance.

Choice: the ``source`` argument, else the ``BNLIB_DATA`` environment variable,
else the Keras download. A value is ``keras``, ``synthetic`` or a path; the kind
of a path is detected from its contents. Nothing falls back silently: a source
that fails raises :class:`DataError` naming the file and the fix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import numbers
import os
import pickle
import re
import tarfile
import tempfile
from pathlib import Path

import numpy as np

CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
NUM_TRAIN, NUM_TEST = 50_000, 10_000
IMAGE_SHAPE = (32, 32, 3)
ENV_VAR = "BNLIB_DATA"
REPOSITORY = Path(__file__).resolve().parents[1]
CACHE_ENV_VAR = "BNLIB_CACHE"
CACHE_FORMAT = 2  # bump when the decoded layout changes
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

FIX_HINT = (
    "Point the loader at a CIFAR-10 copy: pass source=PATH (CLI: --data PATH) or "
    f"set {ENV_VAR}=PATH to cifar-10-python.tar.gz, a cifar-10-batches-py/ folder, "
    "or an image-folder tree / .tar.gz such as ../shared/data/cifar10-jpeg.tar.gz; "
    f"{ENV_VAR}=keras downloads it (needs a network)."
)


# fixed_sample's shuffle: the same images for every run and every chapter
SAMPLE_SEED = 0


def fixed_sample(images: np.ndarray, labels: np.ndarray | None = None,
                 size: int | None = None):
    """A split's images (and labels) in a fixed shuffle, its first ``size``
    (all without one): what a probe, a diagnostic or a chapter measures on
    when it needs "some images". Never the stored order: an image-folder copy
    (the offline JPEG one) stores each split sorted by class, so its first
    128 images are all airplanes. The same images for every run on the same
    data (numpy ``default_rng(SAMPLE_SEED)``, no shared generator touched)."""
    order = np.random.default_rng(SAMPLE_SEED).permutation(len(images))[:size]
    if labels is None:
        return images[order]
    return images[order], np.asarray(labels)[order]


class DataError(RuntimeError):
    """A data source is missing, corrupt or of the wrong shape."""


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where a data set came from; stored in every result JSON."""

    kind: str  # python | folder | keras | synthetic
    source: str | None  # file name, or a path relative to the repository
    sha256: str | None
    notes: str
    num_train: int
    num_test: int
    # where it was read on this machine: for messages, never recorded
    location: str | None = dataclasses.field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict:
        record = dataclasses.asdict(self)
        record.pop("location")
        return record

    def describe(self) -> str:
        where = f" from {self.source}" if self.source else ""
        return (
            f"CIFAR-10 [{self.kind}]{where}: {self.num_train:,} train / "
            f"{self.num_test:,} test images. {self.notes}"
        )


@dataclasses.dataclass(frozen=True)
class Cifar10:
    x_train: np.ndarray  # uint8 (N, 32, 32, 3)
    y_train: np.ndarray  # int32 (N,)
    x_test: np.ndarray
    y_test: np.ndarray
    provenance: Provenance

    def __iter__(self):  # allows ``x_tr, y_tr, x_te, y_te, prov = load_cifar10()``
        return iter((self.x_train, self.y_train, self.x_test, self.y_test,
                     self.provenance))


def recorded_source(path: Path) -> str:
    """What a result records of a data file: its path relative to the
    repository when it lies inside it, else its file name (with the sha256,
    that names the data on any machine; an absolute path would not)."""
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(REPOSITORY).as_posix()
    except ValueError:
        return resolved.name


# --------------------------------------------------------------------------- choice
def resolve_source(source: str | os.PathLike | None = None) -> str:
    """Explicit argument > ``BNLIB_DATA`` > ``keras`` (download)."""
    if source is not None and str(source) != "":
        return str(source)
    env = os.environ.get(ENV_VAR, "").strip()
    return env or "keras"


def load_cifar10(source: str | os.PathLike | None = None, *,
                 cache_dir: str | os.PathLike | None = None,
                 use_cache: bool = True,
                 sizes: tuple[int, int] | None = (NUM_TRAIN, NUM_TEST)) -> Cifar10:
    """Load CIFAR-10 as uint8 images and int32 labels, with its provenance.

    ``source`` is ``"keras"``, ``"synthetic"`` or a path (see module doc).
    Decoded arrays of file sources are cached under ``cache_dir`` (default
    ``$BNLIB_CACHE`` or ``~/.cache/bnlib``), keyed by the archive's sha256, so
    the second load takes a second or two. ``sizes`` are the image counts a
    full copy must have (``None`` accepts any balanced size: for tiny test files).
    """
    if sizes is not None and (
            not isinstance(sizes, (tuple, list)) or len(sizes) != 2
            or any(isinstance(n, bool) or not isinstance(n, numbers.Integral)
                   or n < 1 for n in sizes)):
        raise ValueError(f"sizes must be None or (train images, test images), two "
                         f"whole numbers >= 1, got {sizes!r}")
    chosen = resolve_source(source)
    if chosen == "synthetic":
        return synthetic_cifar10()
    if chosen == "keras":
        return _load_keras(sizes)
    path = Path(chosen).expanduser()
    if not path.exists():
        raise DataError(f"CIFAR-10 source {str(path)!r} does not exist. {FIX_HINT}")
    digest = _fingerprint(path)
    cache_file = None
    if use_cache:
        # keyed by content alone: a hit needs no listing of the archive
        cache_file = _cache_dir(cache_dir) / f"cifar10-{digest[:16]}-v{CACHE_FORMAT}.npz"
        if cache_file.exists():
            try:
                return _read_cache(cache_file, path, digest, sizes)
            except Exception:  # a damaged cache is rebuilt, never trusted
                cache_file.unlink(missing_ok=True)
    kind = detect_kind(path)
    if kind == "python":
        arrays = _read_python_batches(path)
        notes = "official python batches (lossless)"
    else:
        arrays, fmt = _read_image_folder(path)
        notes = f"image-folder tree of {fmt} files"
        if fmt == "JPEG":
            notes += (" (lossy: the offline copy is JPEG quality 75; accuracies can "
                      "differ by about a point from the official files)")
    data = _validate(*arrays, Provenance(kind, recorded_source(path), digest, notes,
                                         len(arrays[0]), len(arrays[2]),
                                         str(path.resolve())), sizes)
    if cache_file is not None:
        _write_cache(cache_file, data)
    return data


# --------------------------------------------------------------------------- detect
def detect_kind(path: Path) -> str:
    """``python`` or ``folder`` from what the path contains."""
    if path.is_dir():
        if list(path.rglob("data_batch_1")):
            return "python"
        if _find_split_root(path.rglob("*")) is not None:
            return "folder"
        raise DataError(
            f"{path} holds neither cifar-10-batches-py/data_batch_1 nor an image "
            f"tree train/<class>/*.jpg. {FIX_HINT}")
    try:
        with tarfile.open(path, "r:*") as tar:
            names = tar.getnames()
    except (tarfile.TarError, OSError, EOFError, ValueError) as err:
        raise DataError(
            f"{path} is not a readable .tar.gz archive ({err}); it may be truncated "
            f"or corrupt: download or copy it again. {FIX_HINT}") from err
    if any(n.endswith("data_batch_1") for n in names):
        return "python"
    if _find_split_root(names) is not None:
        return "folder"
    raise DataError(
        f"{path} holds neither cifar-10-batches-py/ nor an image tree "
        f"train/<class>/*.jpg. {FIX_HINT}")


def _find_split_root(names) -> str | None:
    pattern = re.compile(r"(?:^|/)train/([^/]+)/[^/]+$")
    for name in names:
        match = pattern.search(str(name).replace(os.sep, "/"))
        if match and match.group(1) in CLASSES:
            return match.group(0)
    return None


# --------------------------------------------------------------------------- readers
def _read_python_batches(path: Path):
    wanted = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    blobs: dict[str, bytes] = {}
    if path.is_dir():
        for name in wanted:
            hits = list(path.rglob(name))
            if hits:
                blobs[name] = hits[0].read_bytes()
    else:
        try:
            with tarfile.open(path, "r:*") as tar:
                for member in tar:
                    base = member.name.rsplit("/", 1)[-1]
                    if base in wanted and member.isfile():
                        blobs[base] = tar.extractfile(member).read()
        except (tarfile.TarError, OSError, EOFError, ValueError) as err:
            raise DataError(f"{path} is truncated or corrupt ({err}): download it "
                            f"again. {FIX_HINT}") from err
    missing = [n for n in wanted if n not in blobs]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}: the python batches are "
                        f"incomplete. {FIX_HINT}")

    def unpack(name):
        try:
            batch = pickle.loads(blobs[name], encoding="bytes")
            images = np.asarray(batch[b"data"], dtype=np.uint8)
            labels = np.asarray(batch[b"labels"], dtype=np.int32)
            images = images.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        except Exception as err:
            raise DataError(f"{path}: batch {name} cannot be decoded ({err}); the "
                            f"file is corrupt. {FIX_HINT}") from err
        return images, labels

    parts = [unpack(n) for n in wanted[:5]]
    x_test, y_test = unpack("test_batch")
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    return x_train, y_train, x_test, y_test


def _decode_image(blob: bytes, where: str):
    from PIL import Image

    try:
        with Image.open(io.BytesIO(blob)) as img:
            fmt = img.format
            array = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except Exception as err:
        raise DataError(f"{where} is not a readable image ({err}); the archive is "
                        f"corrupt: copy it again. {FIX_HINT}") from err
    if array.shape != IMAGE_SHAPE:
        raise DataError(f"{where} is {array.shape[1]}x{array.shape[0]}, not 32x32: "
                        f"this is not CIFAR-10. {FIX_HINT}")
    return array, fmt


def _iter_folder_files(path: Path):
    """Yield (split, class_name, relative_name, bytes) for each image file."""
    if path.is_dir():
        for file in sorted(path.rglob("*")):
            if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
                rel = file.relative_to(path).as_posix()
                yield rel, file.read_bytes()
        return
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if member.isfile() and member.name.lower().endswith(IMAGE_SUFFIXES):
                    yield member.name, tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, ValueError, KeyError) as err:
        raise DataError(f"{path} is truncated or corrupt ({err}): copy or download "
                        f"it again. {FIX_HINT}") from err


def _read_image_folder(path: Path):
    from tqdm import tqdm

    splits: dict[str, list] = {"train": [], "test": []}
    formats = set()
    files = _iter_folder_files(path)
    for rel, blob in tqdm(files, desc=f"decoding {path.name}", unit="img",
                          total=NUM_TRAIN + NUM_TEST, mininterval=1.0, leave=False):
        parts = rel.split("/")
        if len(parts) < 3 or parts[-3] not in splits:
            continue
        split, class_name = parts[-3], parts[-2]
        if class_name not in CLASSES:
            raise DataError(f"{path}: {rel} is in an unknown class folder "
                            f"{class_name!r}; expected one of {', '.join(CLASSES)}.")
        array, fmt = _decode_image(blob, f"{path}:{rel}")
        formats.add(fmt)
        # sort key: file name, so the order does not depend on the archive's order
        splits[split].append((class_name, parts[-1], array, CLASSES.index(class_name)))
    for split in splits:
        if not splits[split]:
            raise DataError(f"{path} has no {split}/<class>/ images: wrong layout. "
                            f"Expected {{train,test}}/<class>/*.jpg. {FIX_HINT}")
        splits[split].sort(key=lambda item: (item[3], item[1]))

    def stack(items):
        return (np.stack([i[2] for i in items]),
                np.asarray([i[3] for i in items], dtype=np.int32))

    fmt = "/".join(sorted(f or "unknown" for f in formats))
    return (*stack(splits["train"]), *stack(splits["test"])), fmt


def _load_keras(sizes) -> Cifar10:
    try:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as err:
        raise DataError(
            f"keras.datasets.cifar10.load_data() failed ({type(err).__name__}: {err}). "
            f"This source downloads from the internet. {FIX_HINT}") from err
    prov = Provenance("keras", None, None,
                      "keras.datasets.cifar10 download (official data, lossless)",
                      len(x_train), len(x_test))
    return _validate(x_train, y_train, x_test, y_test, prov, sizes)


def synthetic_cifar10(num_train: int = 5000, num_test: int = 1000,
                      seed: int = 0) -> Cifar10:
    """SYNTHETIC stand-in: class-tinted noise. Never real results."""
    rng = np.random.default_rng(seed)
    tints = rng.uniform(40, 215, size=(10, 1, 1, 3))

    def make(n):
        labels = np.arange(n, dtype=np.int32) % 10
        noise = rng.normal(0, 40, size=(n, *IMAGE_SHAPE))
        images = np.clip(tints[labels] + noise, 0, 255).astype(np.uint8)
        return images, labels

    x_train, y_train = make(num_train)
    x_test, y_test = make(num_test)
    prov = Provenance("synthetic", None, None,
                      "SYNTHETIC data (class-tinted noise), not CIFAR-10",
                      num_train, num_test)
    return Cifar10(x_train, y_train, x_test, y_test, prov)


# --------------------------------------------------------------------------- checks
def _validate(x_train, y_train, x_test, y_test, prov: Provenance,
              sizes=(NUM_TRAIN, NUM_TEST)) -> Cifar10:
    where = prov.location or prov.kind
    y_train = np.asarray(y_train).reshape(-1).astype(np.int32)
    y_test = np.asarray(y_test).reshape(-1).astype(np.int32)
    expected_sizes = sizes or (None, None)
    for name, x, y, expected in (("train", x_train, y_train, expected_sizes[0]),
                                 ("test", x_test, y_test, expected_sizes[1])):
        if x.dtype != np.uint8 or x.shape[1:] != IMAGE_SHAPE:
            raise DataError(f"{where}: {name} images are {x.dtype}{x.shape}, expected "
                            f"uint8 (N, 32, 32, 3). {FIX_HINT}")
        if len(x) != len(y):
            raise DataError(f"{where}: {len(x)} {name} images but {len(y)} labels.")
        if expected is not None and len(x) != expected:
            raise DataError(f"{where}: {len(x):,} {name} images, CIFAR-10 has "
                            f"{expected:,}; the copy is incomplete. {FIX_HINT}")
        if y.min() < 0 or y.max() > 9:
            raise DataError(f"{where}: {name} labels outside 0-9.")
        counts = np.bincount(y, minlength=10)
        if counts.min() != counts.max():
            raise DataError(f"{where}: {name} classes are unbalanced {counts.tolist()}; "
                            f"CIFAR-10 has the same number per class. {FIX_HINT}")
    return Cifar10(x_train, y_train, x_test, y_test, prov)


# --------------------------------------------------------------------------- cache
def _cache_dir(cache_dir) -> Path:
    root = Path(cache_dir or os.environ.get(CACHE_ENV_VAR)
                or Path.home() / ".cache" / "bnlib")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _fingerprint(path: Path) -> str:
    """sha256 of an archive, or of a folder's file names and sizes."""
    digest = hashlib.sha256()
    if path.is_file():
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    for file in sorted(path.rglob("*")):
        if file.is_file():
            stat = file.stat()
            digest.update(f"{file.relative_to(path)}|{stat.st_size}|"
                          f"{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _write_cache(cache_file: Path, data: Cifar10) -> None:
    fd, tmp = tempfile.mkstemp(dir=cache_file.parent, suffix=".tmp.npz")
    os.close(fd)
    np.savez(tmp, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test,
             y_test=data.y_test, kind=np.array(data.provenance.kind),
             notes=np.array(data.provenance.notes))
    os.replace(tmp, cache_file)


def _read_cache(cache_file: Path, path: Path, digest: str, sizes) -> Cifar10:
    with np.load(cache_file) as npz:
        arrays = [npz[k] for k in ("x_train", "y_train", "x_test", "y_test")]
        kind, notes = str(npz["kind"]), str(npz["notes"])
    prov = Provenance(kind, recorded_source(path), digest, notes,
                      len(arrays[0]), len(arrays[2]), str(path.resolve()))
    return _validate(*arrays, prov, sizes)
