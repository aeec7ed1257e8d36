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
    from rejection_fhir.commands.smart_keygen import smart_keygen

    keys = smart_keygen(out_dir, alg)
    click.echo(f"wrote {keys.private_key} (private, mode 0600) and {keys.jwks} (public)")
    click.echo(f"key id (kid): {keys.kid}, algorithm {keys.algorithm}")
