"""``rejection-fhir preview --install-lforms``: LHC-Forms for people who installed with pip.

The repository's ``scripts/install-lforms`` is not in a pip install, so the package fetches
the pinned LHC-Forms itself: with ``npm pack`` when npm is there, else the npm registry's
tarball over HTTPS (TLS verified).  Either way the tarball must match the pinned sha512
(the ``integrity`` npm records, kept in step with ``web/package.json``) before anything is
unpacked, and only the files the preview serves are taken out of it, by name: a tarball
cannot write anywhere else.  They land in the user's cache folder
(``$XDG_CACHE_HOME/rejection-fhir/lforms-<version>``), moved into place in one rename.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from rejection_fhir.errors import ConfigError

#: The pin: keep in step with web/package.json (tests/unit/preview/test_lforms_install.py).
LFORMS_VERSION = "40.1.3"
LFORMS_INTEGRITY = "sha512-WLruTm+BcVnafC0rSAQ3/cNqhxvclBUxyBG68aub/uha2NaK9H8ZZcEXTTuORuGzzCt0wa7fvhuieZtcDIdPzQ=="
REGISTRY_TARBALL = "https://registry.npmjs.org/lforms/-/lforms-{version}.tgz"
#: The largest tarball accepted: lforms 40.1.3 is about 20 MB.
MAX_TARBALL_BYTES = 200_000_000
VERSION_FILE = ".lforms-version"


def cache_dir(environ: dict[str, str] | None = None) -> Path:
    """Where --install-lforms puts LHC-Forms: the user's cache folder."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "rejection-fhir" / f"lforms-{LFORMS_VERSION}"


def integrity(data: bytes) -> str:
    """The npm ``integrity`` string (sha512, base64) of ``data``."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def _fetch_with_npm(npm: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="rfhir-lforms-") as work:
        done = subprocess.run(
            [npm, "pack", "--silent", f"lforms@{LFORMS_VERSION}"],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        tarball = Path(work) / f"lforms-{LFORMS_VERSION}.tgz"
        if done.returncode != 0 or not tarball.is_file():
            last = (done.stderr.strip().splitlines() or ["no tarball"])[-1][:300]
            raise ConfigError(
                f"npm pack lforms@{LFORMS_VERSION} failed: {last}",
                hint="check that this machine reaches the npm registry (npm config get registry)",
            )
        return tarball.read_bytes()


def _fetch_over_https() -> bytes:
    import requests

    url = REGISTRY_TARBALL.format(version=LFORMS_VERSION)
    try:
        with requests.get(url, stream=True, timeout=(10, 120)) as answer:
            answer.raise_for_status()
            chunks, size = [], 0
            for chunk in answer.iter_content(1 << 16):
                size += len(chunk)
                if size > MAX_TARBALL_BYTES:
                    raise ConfigError(f"{url} is larger than any LHC-Forms release; refused")
                chunks.append(chunk)
            return b"".join(chunks)
    except requests.RequestException as exc:
        raise ConfigError(
            f"cannot fetch LHC-Forms {LFORMS_VERSION} from {url}: {type(exc).__name__}",
            hint="check the network (or proxy settings, HTTPS_PROXY); or install npm and retry",
        ) from None


def fetch_tarball() -> bytes:
    """The pinned lforms tarball: with npm when it is on PATH, else over HTTPS."""
    npm = shutil.which("npm")
    return _fetch_with_npm(npm) if npm else _fetch_over_https()


def install(
    files: tuple[str, ...],
    *,
    dest: Path | None = None,
    fetch: Callable[[], bytes] = fetch_tarball,
    force: bool = False,
) -> Path:
    """Unpack ``files`` (paths under ``dist/lforms``) of the pinned LHC-Forms into ``dest``.

    Does nothing when ``dest`` already holds this version with every file, unless ``force``.
    """
    dest = dest or cache_dir()
    marker = dest / VERSION_FILE
    if (
        not force
        and marker.is_file()
        and marker.read_text(encoding="utf-8").strip() == LFORMS_VERSION
        and all((dest / rel).is_file() for rel in files)
    ):
        return dest
    data = fetch()
    actual = integrity(data)
    if actual != LFORMS_INTEGRITY:
        raise ConfigError(
            f"the lforms {LFORMS_VERSION} tarball has integrity {actual[:30]}…, not the pinned "
            f"{LFORMS_INTEGRITY[:30]}…; nothing was installed",
            hint="the download was altered or truncated; retry, and report it if it persists",
        )
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    except OSError as exc:
        from rejection_fhir.errors import output_error

        raise output_error(dest, exc, what="cannot install LHC-Forms") from None
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for rel in files:
                try:
                    member = archive.getmember(f"package/dist/lforms/{rel}")
                except KeyError:
                    raise ConfigError(
                        f"the lforms {LFORMS_VERSION} tarball has no dist/lforms/{rel}"
                    ) from None
                source = archive.extractfile(member) if member.isfile() else None
                if source is None:
                    raise ConfigError(f"dist/lforms/{rel} in the lforms tarball is not a file")
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(source.read())
        (staging / VERSION_FILE).write_text(LFORMS_VERSION + "\n", encoding="utf-8")
        if dest.exists():
            shutil.rmtree(dest)
        os.rename(staging, dest)
    except OSError as exc:
        from rejection_fhir.errors import output_error

        raise output_error(dest, exc, what="cannot install LHC-Forms") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return dest
