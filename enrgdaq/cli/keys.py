"""``enrgdaq keys``: CURVE key pairs for the data bridges between nodes (docs/bridges.md)."""

from __future__ import annotations

import os

import click

from enrgdaq.message.curve import generate, public_key


@click.group()
def keys() -> None:
    """Make and show the CURVE keys that authenticate bridges between nodes."""


@keys.command("generate")
@click.argument("name")
@click.option(
    "--dir",
    "key_dir",
    default="keys",
    show_default=True,
    help="Where the two files go (made with mode 0700).",
)
def generate_command(name: str, key_dir: str) -> None:
    """Make NAME.key (public: copy it to the nodes that must let this one in) and
    NAME.key_secret (stays here, mode 0600). Existing files are never overwritten."""
    public, secret = generate(key_dir, name)
    click.echo(f"public key: {os.path.abspath(public)}  (copy to the peers' authorized_keys_dir)")
    click.echo(f"secret key: {os.path.abspath(secret)}  (keep on this node; never copy it)")


@keys.command("show")
@click.argument("key_file", type=click.Path(exists=True, dir_okay=False))
def show_command(key_file: str) -> None:
    """Print the public key of KEY_FILE (a .key or .key_secret file); never the secret one."""
    click.echo(public_key(key_file).decode())
