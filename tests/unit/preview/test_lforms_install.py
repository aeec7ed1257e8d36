"""preview --install-lforms: the pinned LHC-Forms fetched, checked and unpacked by the package."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from rejection_fhir.errors import ConfigError
from rejection_fhir.preview import lforms_install
from rejection_fhir.preview.page import LFORMS_FILES, default_lforms_dir, resolve_lforms_dir

REPO = Path(__file__).resolve().parents[3]


def tarball(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture
def fake_release(monkeypatch):
    files = {f"package/dist/lforms/{rel}": f"/* {rel} */".encode() for rel in LFORMS_FILES}
    files["package/dist/lforms/../../evil.txt"] = b"never"
    data = tarball(files)
    monkeypatch.setattr(lforms_install, "LFORMS_INTEGRITY", lforms_install.integrity(data))
    return data


def test_the_pin_matches_web_package_json():
    pin = json.loads((REPO / "web" / "package.json").read_text(encoding="utf-8"))
    assert pin["dependencies"]["lforms"] == lforms_install.LFORMS_VERSION
    assert pin["config"]["lformsIntegrity"] == lforms_install.LFORMS_INTEGRITY


def test_installs_only_the_served_files_into_the_cache_and_is_found_there(
    fake_release, tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("RFHIR_LFORMS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    calls = []

    def fetch():
        calls.append(1)
        return fake_release

    dest = lforms_install.install(tuple(LFORMS_FILES), fetch=fetch)
    assert dest == tmp_path / "cache" / "rejection-fhir" / f"lforms-{lforms_install.LFORMS_VERSION}"
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == sorted(
        [*LFORMS_FILES, ".lforms-version"]
    )
    assert not list(tmp_path.rglob("evil.txt"))
    lforms_install.install(tuple(LFORMS_FILES), fetch=fetch)
    assert len(calls) == 1  # already there: nothing fetched
    if not (tmp_path / ".web").exists() and not (REPO / ".web" / "lforms").is_dir():
        assert default_lforms_dir() == dest
    assert resolve_lforms_dir(dest) == dest


def test_a_tarball_that_does_not_match_the_pin_installs_nothing(fake_release, tmp_path):
    with pytest.raises(ConfigError, match="integrity"):
        lforms_install.install(
            tuple(LFORMS_FILES), dest=tmp_path / "lforms", fetch=lambda: fake_release + b"x"
        )
    assert not (tmp_path / "lforms").exists() and list(tmp_path.iterdir()) == []


def test_missing_lforms_names_a_command_a_pip_user_has(tmp_path):
    with pytest.raises(ConfigError) as caught:
        resolve_lforms_dir(tmp_path / "none")
    assert "rejection-fhir preview --install-lforms" in str(caught.value)
    assert "scripts/" not in str(caught.value)
