#!/usr/bin/env bash
# The fast-evaluation benchmarks on one accelerator, in one go (at most
# 9 min 10 s: each has its own time limit; docs/scale.md says what they
# measure and which path to use).
#
#   bash benchmarks/device_check.sh            # from the repository root
#
# Writes two files to $OUT (default runs/device_check): results.jsonl (one
# JSON line per benchmark, as each prints it on any backend) and log.txt
# (each benchmark's stderr and exit status). Every benchmark has its own
# time limit, so one that runs long costs only its own line.
#
# Needs jax with the accelerator's plugin, flax, optax, orbax-checkpoint,
# scikit-learn, tqdm, ml_collections and, for the PyTorch ratios, torch
# (on the GPU when it sees one). Fashion-MNIST is read from
# $GRAM_JAX_FASHION_MNIST_DIR (the four IDX files of the Debian package
# dataset-fashion-mnist); without it that workload is skipped.
# Knobs: PYTHON (python3), ITERATIONS (30), FASHION_ITERATIONS (10).
set -u
out=${OUT:-runs/device_check}
mkdir -p "$out"
py=${PYTHON:-python3}
iters=${ITERATIONS:-30}
fashion_iters=${FASHION_ITERATIONS:-10}
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
results="$out/results.jsonl"
log="$out/log.txt"
: >"$results"
: >"$log"

bench() {  # bench NAME SECONDS SCRIPT ARGS...
  local name=$1 limit=$2
  shift 2
  echo "== $name ($*)" | tee -a "$log"
  local start=$SECONDS
  timeout "$limit" "$py" "$@" >>"$results" 2>>"$log"
  local rc=$?
  echo "== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$log"
}

"$py" -c "import jax; print('jax', jax.__version__, jax.devices())" \
  2>&1 | tee -a "$log"
bench search_throughput 140 benchmarks/search_throughput.py \
  --iterations "$iters"
if [ -n "${GRAM_JAX_FASHION_MNIST_DIR:-}" ]; then
  bench search_throughput_fashion 110 benchmarks/search_throughput.py \
    --iterations "$fashion_iters" \
    --config experiments/configs/search_fashion_mnist.py
else
  echo "== search_throughput_fashion skipped: GRAM_JAX_FASHION_MNIST_DIR" \
    "is not set" | tee -a "$log"
fi
bench scaling 110 benchmarks/scaling.py --devices 1 --k 1 2 4 8 16 \
  --repeats 2 --seeds 1 4
bench engine_ceiling 50 benchmarks/engine_ceiling.py --candidates 2
bench paper_scale 130 benchmarks/scaling.py --paper-scale --iterations 3
