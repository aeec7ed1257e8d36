"""``rejection-fhir smart-keygen``: a key pair for SMART Backend Services, written safely.

The private key is created with mode 0600 and never overwritten; a half-written pair is
removed, so the folder holds both files or neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class KeyFiles:
    """What :func:`smart_keygen` wrote: keep ``private_key``, register ``jwks``."""

    private_key: Path
    jwks: Path
    kid: str
    algorithm: str


def smart_keygen(out_dir: Path, alg: str = "RS384") -> KeyFiles:
    """Write ``smart-key.pem`` (mode 0600) and ``jwks.json`` into ``out_dir``.

    ``alg`` is RS384 (RSA-3072) or ES384 (EC P-384).  Raises UsageError when the private
    key exists already, OutputError when the folder cannot be written.
    """
    import json
    import os

    from rejection_fhir.errors import UsageError, output_error
    from rejection_fhir.fhir.smart import generate_key_pair

    pair = generate_key_pair(alg)
    key_path, jwks_path = out_dir / "smart-key.pem", out_dir / "jwks.json"
    if key_path.exists():
        raise UsageError(f"{key_path} exists; refusing to overwrite a private key")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise output_error(out_dir, exc, what="cannot write the key pair") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pair.private_pem)
        jwks_path.write_text(json.dumps(pair.jwks, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        # Half a key pair is no use: leave neither file behind.
        key_path.unlink(missing_ok=True)
        jwks_path.unlink(missing_ok=True)
        raise output_error(out_dir, exc, what="cannot write the key pair") from None
    return KeyFiles(key_path, jwks_path, pair.kid, pair.algorithm)
