"""Tokens: `fluid auth token` mints one, and `fluid dev --auth` gets its keys and tokens here."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

import typer

from fluid.service.auth import (
    AuthSettings,
    Key,
    Role,
    load_key,
    mint_token,
    parse_roles,
    write_signing_key,
)

from .render import print_error

# `fluid dev --auth` keeps its key and its admin token here, under the folder it runs in,
# so that `fluid auth token` run from the same folder finds the key with no option.
DEV_FOLDER = Path(".fluid")
DEV_SIGNING_KEY = DEV_FOLDER / "signing.key"
DEV_ADMIN_TOKEN = DEV_FOLDER / "admin.token"
DEV_TOKEN_TTL_SECONDS = 30 * 86_400
# The embedded services' own token: what they call each other with, and nothing more.
DEV_SERVICE_ROLES = (Role.read, Role.queue, Role.worker, Role.ingest)

auth_app = typer.Typer(help="Signed tokens with roles (see the README's Tokens and roles).")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_ttl(text: str) -> int:
    """``90``, ``90s``, ``15m``, ``12h`` or ``30d`` as seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if match is None or int(match[1]) == 0:
        raise typer.BadParameter(f"{text!r}: a positive duration such as 3600, 15m, 12h or 30d")
    return int(match[1]) * _UNITS[match[2] or "s"]


def _signing_key(path: Path | None) -> Key:
    if path is not None:
        return load_key(path)
    configured = AuthSettings().signing_key()
    if configured is not None:
        return configured
    if DEV_SIGNING_KEY.exists():
        return load_key(DEV_SIGNING_KEY)
    # There is no RPC that mints tokens: minting needs the key, so an admin token alone
    # cannot make new tokens (and a stolen token cannot make longer-lived ones).
    raise ValueError(
        "minting a token needs a signing key: --key FILE, FLUID_AUTH_KEY_FILES (an Ed25519 "
        f"private key or an HS256 secret) or {DEV_SIGNING_KEY} made by `fluid dev --auth`"
    )


@auth_app.command("token")
def token(
    roles: Annotated[str, typer.Option(help=f"Comma-separated roles: {', '.join(Role)}.")],
    ttl: Annotated[str, typer.Option(help="How long the token is valid: 3600, 15m, 12h, 30d.")] = (
        "1d"
    ),
    subject: Annotated[str, typer.Option(help="Who the token names (its sub claim).")] = "cli",
    key: Annotated[
        Path | None,
        typer.Option(help="Signing key file (default: FLUID_AUTH_KEY_FILES, then .fluid/)."),
    ] = None,
) -> None:
    """Mint a token and print it (it needs the signing key)."""
    seconds = parse_ttl(ttl)
    try:
        chosen = parse_roles(roles)
        typer.echo(mint_token(_signing_key(key), subject, chosen, seconds))
    except (ValueError, OSError) as error:
        print_error(str(error))
        raise typer.Exit(1) from None


def _write_private(path: Path, text: str) -> None:
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    path.write_text(text + "\n")


def prepare_dev_auth() -> Path:
    """Make `fluid dev` require tokens: a signing key (kept across runs), a fresh admin
    token in ``.fluid/admin.token``, and the embedded services' own token.

    Both go into this process's environment, which the host reads and which the run
    processes of the cpu-runner inherit.
    """
    key = (
        load_key(DEV_SIGNING_KEY)
        if DEV_SIGNING_KEY.exists()
        else write_signing_key(DEV_SIGNING_KEY)
    )
    _write_private(
        DEV_ADMIN_TOKEN, mint_token(key, "fluid-dev-admin", [Role.admin], DEV_TOKEN_TTL_SECONDS)
    )
    os.environ["FLUID_AUTH_KEY_FILES"] = str(DEV_SIGNING_KEY.resolve())
    os.environ["FLUID_TOKEN"] = mint_token(
        key, "fluid-dev", DEV_SERVICE_ROLES, DEV_TOKEN_TTL_SECONDS
    )
    return DEV_ADMIN_TOKEN
