#!/usr/bin/env bash
# The stroke pipeline on the synthetic brain (512 × 512 × 32 slices × 30 frames): every case
# at every noise level, with the time of each step and the peak memory of the process (which
# includes simulating the phantom, about 1 GB of the figure).
# Usage: bash bench/stroke_brain.sh [downsample]   (1 = the issue's 512 matrix)
set -euo pipefail
cd "$(dirname "$0")/.."
down="${1:-1}"
cargo build --release -q -p gantry-perfusion --example brain
bin=target/release/examples/brain
echo "| case | noise HU per 0.45 mm voxel | motion | core mL (truth) | core error mL | Tmax>6 s mL (truth) | Tmax>6 error mL | Tmax>10 s mL (truth) | DEFUSE-3 / EXTEND (truth) | AIF in artery | VOF in sinus | arterial scale error | pipeline s | steps s: motion / mask+timing / ΔHU / AIF+VOF / binning / TIPS / fit / decision | peak MB |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
run() {  # case noise motion
    local noise_grid
    noise_grid=$(python3 -c "print($2 / $down)")
    local extra=()
    [ "$3" = motion ] && extra=(m)
    local out
    out=$( { ROW=1 /usr/bin/time -f "PEAK %M" "$bin" "$noise_grid" "$1" "$down" "${extra[@]}"; } 2>&1 )
    local row peak
    row=$(echo "$out" | grep '^ROW' | sed 's/^ROW //')
    peak=$(echo "$out" | grep '^PEAK' | awk '{printf "%.0f", $2 / 1024}')
    echo "${row} ${peak} |"
}
for noise in 0 2 5 10 15; do
    run typical "$noise" still
done
for noise in 0 5 15; do
    run typical "$noise" motion
    run large "$noise" still
    run mimic "$noise" still
done
run mimic 15 motion
