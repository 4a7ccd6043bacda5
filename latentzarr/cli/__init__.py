"""The ``latentzarr`` command line.

Subcommands live in small modules next to this one and are imported only when used, so ``latentzarr --help``
stays fast (no torch, no distributed).
"""

from __future__ import annotations

import importlib

import click

__all__ = ["cli", "main"]

# command name -> "module:attribute" of a click command or group
COMMANDS: dict[str, str] = {
    "batch-decode": "latentzarr.cli.batch:batch_decode_cmd",
    "bench": "latentzarr.cli.bench:bench",
    "cost": "latentzarr.cli.cost:cost",
    "demo": "latentzarr.cli.demo:demo",
    "export": "latentzarr.cli.store_cmds:export_cmd",
    "info": "latentzarr.cli.store_cmds:info_cmd",
    "ingest-images": "latentzarr.cli.store_cmds:ingest_images_cmd",
    "lifecycle": "latentzarr.cli.lifecycle:lifecycle_cmd",
    "ls": "latentzarr.cli.store_cmds:ls_cmd",
    "replay": "latentzarr.cli.replay:replay",
    "serve": "latentzarr.cli.serve:serve",
    "simulate": "latentzarr.cli.simulate:simulate",
    "trace": "latentzarr.cli.trace:trace",
    "vacuum": "latentzarr.cli.vacuum:vacuum_cmd",
    "verify": "latentzarr.cli.store_cmds:verify_cmd",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="latentzarr")
def cli() -> None:
    """Store AI-generated images as compressed diffusion latents in Zarr; decode them on demand."""


def main() -> None:
    """Entry point of the ``latentzarr`` console script."""
    cli()
