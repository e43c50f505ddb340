"""The ``edgeml`` command: a thin click layer over the stage functions.

Each command lives in its own module in this package; ``COMMAND_MODULES`` lists them.
Errors the user can fix (``EdgemlError``) print one line and exit 1 (failure) or 2
(bad input); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter hides our own messages

import click  # noqa: E402

from edgeml import __version__  # noqa: E402
from edgeml.errors import EdgemlError  # noqa: E402

COMMAND_MODULES = ["data", "train", "run", "report", "compress", "convert", "estimate", "search"]


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EdgemlError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except Exception as e:  # an edgeml bug or an unexpected library failure: still one line
            if ctx.obj and ctx.obj.get("debug"):
                raise
            first = str(e).splitlines()[0] if str(e) else ""
            click.echo(f"error: {type(e).__name__}: {first} (rerun with --debug for the traceback)", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeml")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """edgeml: train, compress, convert (hls4ml), C-simulate and estimate jet taggers for FPGAs."""
    ctx.ensure_object(dict)["debug"] = debug
    if not debug:
        _quiet_libraries()


def _quiet_libraries() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


for _name in COMMAND_MODULES:
    importlib.import_module(f"edgeml.cli.{_name}").register(main)
