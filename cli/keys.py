"""`deltaflow keys create | list | revoke`: API keys over /v1/keys (an admin key is needed when
the service requires auth). Registered on cli.main's typer app as a command group."""

from __future__ import annotations

from itertools import islice
from typing import Annotated

import typer

from cli.client import Client
from cli.common import DEFAULT_URL, AsJson, Key, Url, app, console, errors, friendly, print_json
from cli.tables import keys_table

keys_app = typer.Typer(
    help="API keys: create one (shown once), list them, revoke one.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
@friendly
def create(
    name: Annotated[str, typer.Option(help="What the key is for, e.g. ci or alice.")],
    owner: Annotated[
        str | None,
        typer.Option(help="The team whose jobs the key sees (default: the caller's owner)."),
    ] = None,
    admin: Annotated[
        bool, typer.Option("--admin", help="The key may create, list and revoke keys.")
    ] = False,
    url: Url = DEFAULT_URL,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Create an API key and print it: once, since the service stores only its sha256.

    Only the key goes to stdout, so KEY=$(deltaflow keys create --name ci) keeps it."""
    body: dict = {"name": name, "admin": admin}
    if owner is not None:
        body["owner"] = owner
    with Client(url, key) as client:
        record = client.request("POST", "/v1/keys", json=body)
    if as_json:
        print_json(record)
        return
    kind = "admin key" if record["admin"] else "key"
    errors.print(
        f"created {kind} {record['id']} ({record['name']}) for owner {record['owner']}:",
        markup=False,
    )
    print(record["key"], flush=True)
    errors.print(
        "warning: store this key now; it will not be shown again (deltaflow keeps only its hash)",
        style="yellow",
        markup=False,
    )


@keys_app.command("list")
@friendly
def list_keys(
    limit: Annotated[int, typer.Option(min=1, help="How many keys to list.")] = 100,
    url: Url = DEFAULT_URL,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Every API key: id, name, owner, admin, the key's first characters, created, revoked."""
    with Client(url, key) as client:
        items = list(islice(client.pages("/v1/keys", limit=min(limit, 500)), limit))
    if as_json:
        print_json(items)
    else:
        console.print(keys_table(items))


@keys_app.command("revoke")
@friendly
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (or its first characters).")],
    url: Url = DEFAULT_URL,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Revoke an API key: requests with it get 401 from now on. Revoking twice is harmless."""
    with Client(url, key) as client:
        record = client.request("DELETE", f"/v1/keys/{client.resolve(key_id, 'key')}")
    if as_json:
        print_json(record)
        return
    console.print(
        f"revoked key {record['id']} ({record['name']}, owner {record['owner']})",
        markup=False,
        highlight=False,
    )
