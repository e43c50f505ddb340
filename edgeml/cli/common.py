"""Small helpers shared by the CLI modules."""

from __future__ import annotations

import json

import click


def echo_json(obj) -> None:
    from edgeml.io import _json_default

    click.echo(json.dumps(obj, indent=2, default=_json_default))


def existing_path(**kwargs):
    return click.Path(exists=True, dir_okay=kwargs.pop("dir_okay", False), **kwargs)
