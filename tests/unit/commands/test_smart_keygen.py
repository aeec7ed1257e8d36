"""``commands.smart_keygen``: the key pair written safely, called as a library."""

from __future__ import annotations

import json

import pytest

from rejection_fhir.commands.smart_keygen import smart_keygen
from rejection_fhir.errors import OutputError, UsageError
from rejection_fhir.fhir.smart import load_private_key, public_jwk


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_writes_a_private_key_only_its_owner_reads_and_the_matching_jwks(tmp_path, alg):
    keys = smart_keygen(tmp_path / "keys", alg)
    assert keys.algorithm == alg
    assert keys.private_key.stat().st_mode & 0o777 == 0o600
    jwks = json.loads(keys.jwks.read_text(encoding="utf-8"))
    assert jwks["keys"] == [public_jwk(load_private_key(keys.private_key))]
    assert jwks["keys"][0]["kid"] == keys.kid


def test_never_overwrites_a_private_key(tmp_path):
    first = smart_keygen(tmp_path)
    before = first.private_key.read_bytes()
    with pytest.raises(UsageError, match="refusing to overwrite a private key"):
        smart_keygen(tmp_path)
    assert first.private_key.read_bytes() == before


def test_a_folder_that_cannot_be_made_leaves_nothing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    with pytest.raises(OutputError):
        smart_keygen(blocker / "keys")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
