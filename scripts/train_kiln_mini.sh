#!/usr/bin/env bash
# The kiln-mini recipe on a 2-core CPU: every stage capped in wall time (the learning-rate
# schedule follows the fraction of that time used). Usage:
#   scripts/train_kiln_mini.sh WORKDIR   (then copy WORKDIR/kiln-mini-fc to weights/kiln-mini)
# Environment: ASSETS (1200), VAE_MIN (28), DIT_MIN (18), FT_MIN (22), FC_MIN (15), DEVICE (auto).
set -euo pipefail
W=${1:?usage: scripts/train_kiln_mini.sh WORKDIR}
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DEV=${DEVICE:-auto}
mkdir -p "$W"
[ -f "$W/assets/store.json" ] || $PY -m engine train data --out "$W/assets" --assets "${ASSETS:-1200}" --workers 2
$PY -m engine train vae --data "$W/assets" --out "$W/vae" --size mini --device "$DEV" \
    --steps 100000 --batch 8 --lr 1e-3 --max-minutes "${VAE_MIN:-28}" --ckpt-every 200
$PY -m engine train latents --data "$W/assets" --init "$W/vae" --out "$W/latents" --device "$DEV"
$PY -m engine train dit --data "$W/latents" --init "$W/vae" --out "$W/kiln-mini" --device "$DEV" \
    --steps 100000 --batch 32 --lr 5e-4 --max-minutes "${DIT_MIN:-18}" --ckpt-every 200 --fp16-weights
# decoder fine-tuning (encoder frozen, so the DiT's latents stay valid), as LN3Diff does
$PY -m engine train vae --data "$W/assets" --init "$W/kiln-mini" --out "$W/kiln-mini-ft" \
    --device "$DEV" --freeze-encoder --steps 100000 --batch 8 --lr 5e-4 \
    --max-minutes "${FT_MIN:-22}" --ckpt-every 200 --fp16-weights
# FlexiCubes fine-tuning (encoder still frozen): the field's FlexiCubes head, mesh losses
$PY -m engine train vae --data "$W/assets" --init "$W/kiln-mini-ft" --out "$W/kiln-mini-fc" \
    --device "$DEV" --freeze-encoder --flexi --flexi-res 32 --steps 100000 --batch 4 --lr 3e-4 \
    --max-minutes "${FC_MIN:-15}" --ckpt-every 100 --fp16-weights
echo "RECIPE DONE: $W/kiln-mini-fc"
