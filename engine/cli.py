"""`python -m engine SUBCOMMAND`: generate, restyle, morph, serve, bench, doctor, dataset,
train, eval.

Each subcommand lives in its own module with add_arguments(parser) and main(args) -> int;
this file only dispatches, importing the chosen module lazily so `--help` stays fast.
stdout carries results only (JSON or protocol lines); logs and progress go to stderr.
The development commands (bench, dataset, train, eval) live in folders the extension zip
leaves out (blender_manifest.toml); where their module is absent they are not offered.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

SUBCOMMANDS = {
    "generate": ("engine.generate", "prompt or picture -> GLB + JSON"),
    "restyle": ("engine.restyle_cli", "new colours for a mesh, baked onto its own UVs -> PNG"),
    "morph": ("engine.morph_cli", "in-betweens of two results along the latent path -> GLBs"),
    "serve": ("engine.server", "JSON-lines server for the Blender add-on (model stays warm)"),
    "bench": ("engine.bench.cli", "per-stage speed and peak memory"),
    "doctor": ("engine.doctor", "versions, device, models and their checksums"),
    "dataset": ("engine.data.cli", "render procedural assets or your own meshes"),
    "train": ("engine.train.cli", "train the VAE or the DiT"),
    "eval": ("engine.evaluation.cli", "quality figures on held-out seeds"),
}


def _present(module: str) -> bool:
    """Is engine.X.Y's file there? (Looked up on disk: importing a package to ask would
    cost its imports.)"""
    path = Path(__file__).resolve().parent.joinpath(*module.split(".")[1:])
    return path.with_suffix(".py").is_file()


def available() -> dict:
    """SUBCOMMANDS whose module is present (the zip has no development commands)."""
    return {name: entry for name, entry in SUBCOMMANDS.items() if _present(entry[0])}


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description="Kiln engine")
    subs = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in available().items():
        sub = subs.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            importlib.import_module(module).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in argv if a in SUBCOMMANDS), None)
    args, rest = build_parser(chosen).parse_known_args(argv)
    if rest:
        build_parser(chosen).parse_args(argv)   # prints the usage error and exits 2
    return importlib.import_module(SUBCOMMANDS[args.command][0]).main(args) or 0
