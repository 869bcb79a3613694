"""`ember microbenchmark`: `ray microbenchmark`'s rows (and the extras) for Ember.

    ember microbenchmark [--rows KEYS] [--quick] [--json PATH] [--ray-python PATH]

Registered on the CLI group by cli.py; the work is in compare.py.
"""
from __future__ import annotations

import click

from . import compare, runner
from .rows import ROWS, select


@click.command("microbenchmark")
@click.option("--rows", default=None, metavar="KEYS",
              help="Comma-separated row keys or full names, or all / micro (Ray's rows) / "
                   "extras. Default: all. Keys: " + ", ".join(r.key for r in ROWS))
@click.option("--quick", is_flag=True,
              help="0.2 s warm-up, one 0.5 s run, smaller batches for the longest rows.")
@click.option("--json", "json_path", default=None, metavar="PATH",
              help="Also write every figure as JSON to PATH ('-': print only the JSON).")
@click.option("--ray-python", default=None, metavar="PATH",
              help="Python of a venv with Ray: measure Ray too, in the same run, and show "
                   "Ember/Ray ratios.")
@click.option("--duration", type=float, default=None, help="Seconds per timed run.")
@click.option("--repeat", type=int, default=None, help="Timed runs per row.")
@click.option("--warmup", type=float, default=None, help="Warm-up seconds per row.")
def microbenchmark(rows: str | None, quick: bool, json_path: str | None,
                   ray_python: str | None, duration: float | None, repeat: int | None,
                   warmup: float | None) -> None:
    """Measure core performance with the workloads of `ray microbenchmark`.

    Each framework runs in fresh interpreters; rows it cannot run are shown
    with their error.
    """
    try:
        keys = select(rows, [r.key for r in ROWS])
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--rows") from None
    settings = runner.Settings.make(quick=quick, duration=duration, repeat=repeat,
                                    warmup=warmup)
    compare.run(keys, settings, ray_python=ray_python, json_path=json_path)


def register(cli: click.Group) -> None:
    cli.add_command(microbenchmark)
