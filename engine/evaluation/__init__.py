"""Quality figures on held-out procedural assets (`python -m engine eval`).

metrics.py: Chamfer, normal consistency, PSNR, COV / MMD / 1-NNA, dominant colour.
run.py: evaluate(model) -> dict of every figure. cli.py: the command line.
"""
