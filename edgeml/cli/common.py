"""Small helpers shared by the CLI modules."""

from __future__ import annotations

import json

import click

def echo_json(obj) -> None:
    from edgeml.io import _json_default

    click.echo(json.dumps(obj, indent=2, default=_json_default))

