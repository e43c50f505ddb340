"""``edgeml data generate``: produce hls4ml-style jets offline with Pythia8 + FastJet."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("generate")
@click.option("--n-jets", type=click.IntRange(min=5), required=True,
              help="Total jets, split evenly over the 5 classes (g, q, w, z, t).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output .npz (edgeml layout); metadata goes to <stem>.json beside it.")
@click.option("--seed", type=click.IntRange(min=0), default=1, show_default=True, help="Base random seed.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Parallel generator processes (one CPU core each).")
@click.option("--force", is_flag=True, help="Overwrite an existing --out and its metadata.")
@click.option("--json", "as_json", is_flag=True, help="Print the generation metadata as JSON.")
def generate(n_jets: int, out: Path, seed: int, workers: int, force: bool, as_json: bool) -> None:
    """Generate balanced q/g/W/Z/top jets at pT ~ 1 TeV and their 16 features (needs edgeml[generate])."""
    from edgeml.cli.common import echo_json
    from edgeml.data.generate import generate as run_generation
    from edgeml.data.generate import write_sample
    from edgeml.errors import InputError

    if out.exists() and not force:  # fail before minutes of generation, not after
        raise InputError(f"{out} already exists; pass --force to overwrite it or choose another --out")
    data, meta = run_generation(n_jets, seed=seed, workers=workers)
    npz, meta_path = write_sample(data, meta, out, force=force)
    if as_json:
        echo_json(meta)
        return
    click.echo(f"wrote {len(data)} jets to {npz} (metadata {meta_path}); "
               f"{meta['jets_per_cpu_second']} jets per CPU-second, {meta['wall_seconds']} s wall")
