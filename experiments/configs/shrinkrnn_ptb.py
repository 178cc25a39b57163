"""ShrinkRNN on Penn Treebank: the official final-training recipe.

Command (PTB as ptb.{train,valid,test}.txt, e.g. from Mikolov's
simple-examples/data, in ~/data/ptb):
  python -m gram_jax.cli train-rnn \
      --config experiments/configs/shrinkrnn_ptb.py \
      --data-dir ~/data/ptb --workdir runs/shrinkrnn_ptb
  (the released cell; `--cell runs/rnnsearch/cell.json` trains a found one)

Offline smoke run on the built-in synthetic corpus (a minute on a CPU):
  python -m gram_jax.cli train-rnn \
      --config experiments/configs/shrinkrnn_ptb.py:runlocal \
      --workdir runs/shrinkrnn_local

Recipe [AS: evaluation/rnn/test_final.py; ALGORITHMS.md 2.5]: emsize = nhid
= 745 with tied weights (23.0M parameters with the released cell and the
10,000-word vocabulary), SGD lr 20, batch 64, clip 0.25, weight decay 8e-7,
BPTT 35 (p = 0.05 of 17, then N(len, 5), at least 5, at most 55; the step lr
scaled by seq_len / 35), dropouts output 0.75 / hidden 0.25 / input 0.75 /
embedding 0.2 / words 0.1, TAR 1e-3, NT-ASGD with nonmono 5, up to 3000
epochs, seed 1267; validation batch 10, test batch 1.

Expected result (paper / official README): validation perplexity 58.5,
test 56.5, "24M" parameters (the count here is 23.0M; see docs/shrinkrnn.md).
Expected accelerator time: not measured yet. Each epoch is about 415 steps
of 35 sequential cell evaluations; measure seconds per epoch with
`--stop-after-epochs 2` (the `seconds` field of metrics.jsonl) and multiply by
the epoch count (the official code trains up to 3000 epochs; most of the
gain comes in the first few hundred).
"""

import ml_collections


def get_config(arg=None):
  """The PTB recipe; ``arg="runlocal"``: tiny model on the synthetic corpus."""
  c = ml_collections.ConfigDict()
  c.data_dir = ""  # set with --data-dir; "" = synthetic corpus
  c.cell = "released"  # or a cell.json from the RNN search
  c.nhid = 745  # = emsize
  c.epochs = 3000
  c.batch_size = 64
  c.eval_batch_size = 10
  c.test_batch_size = 1
  c.bptt = 35
  c.jitter = True
  c.max_seq_len_delta = 20
  c.bucket = 5  # pad windows to multiples of 5 (11 programs)
  c.learning_rate = 20.0
  c.clip = 0.25
  c.weight_decay = 8e-7
  c.dropout = 0.75
  c.dropouth = 0.25
  c.dropoutx = 0.75
  c.dropouti = 0.2
  c.dropoute = 0.1
  c.alpha = 0.0
  c.beta = 1e-3
  c.asgd = True
  c.nonmono = 5
  c.init_range = 0.04
  c.seed = 1267
  if arg == "runlocal":
    c.nhid = 32
    c.epochs = 8
    c.batch_size = 16
    c.eval_batch_size = 8
    c.test_batch_size = 8
    c.bptt = 20
    c.max_seq_len_delta = 5
    c.bucket = 0  # one compiled program
    c.dropout = c.dropoutx = 0.3
    c.dropouth = c.dropouti = 0.1
    c.nonmono = 2
  elif arg:
    raise ValueError(f"unknown config arg {arg!r}; allowed: runlocal")
  return c
