"""``rejection-fhir smart-keygen``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("smart-keygen")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for smart-key.pem (mode 0600) and jwks.json.",
)
@click.option(
    "--alg",
    type=click.Choice(["RS384", "ES384"]),
    default="RS384",
    show_default=True,
    help="RS384 (RSA-3072) or ES384 (EC P-384).",
)
def smart_keygen_cmd(out_dir: Path, alg: str) -> None:
    """Make a key pair for SMART Backend Services: keep smart-key.pem, register jwks.json.

    Point RFHIR_SMART_PRIVATE_KEY_FILE at the PEM; give the authorization server the JWKS.

    \b
    Example:
      rejection-fhir smart-keygen --out keys --alg ES384
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
    click.echo(f"wrote {key_path} (private, mode 0600) and {jwks_path} (public)")
    click.echo(f"key id (kid): {pair.kid}, algorithm {pair.algorithm}")
