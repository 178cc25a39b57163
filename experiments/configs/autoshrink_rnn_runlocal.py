"""AutoShrink RNN search on the built-in synthetic corpus, small enough for a
CPU.

Command:
  python -m gram_jax.cli autoshrink \
      --config experiments/configs/autoshrink_rnn_runlocal.py \
      --workdir runs/autoshrink_rnn
then train the found cell:
  python -m gram_jax.cli train-rnn \
      --config experiments/configs/shrinkrnn_ptb.py:runlocal \
      --cell runs/autoshrink_rnn/best.json --workdir runs/shrinkrnn_found

What it runs: the official RNN search loop (complete 6-node DAG = 15 edges,
k distinct single-edge removals per round, score (200 - ppl) * 0.25 -
(log10(edges * nhid^2) - 6), remove the best, drop edges of unreachable
nodes, down to round(15 * 0.25) = 4 edges, best snapshot of the trajectory)
with a small proxy: nhid 32, 4 epochs of SGD lr 20 (clip 0.25, lr / 10 after
epochs 0 and 2 as the official E - 4, E - 2 rule gives for E = 4), batch 16,
bptt 20, on the synthetic corpus (5,662 train / 821 valid tokens, 73 words).
Expected: at most 11 rounds x 5 candidates, the 5 of a round vmapped in one
program; a few minutes on a 2-core CPU (one compile of about a minute, then
seconds per round). Proxy perplexities of about 10-15 on this corpus.
For the paper's proxy on PTB: --config.rnn.data_dir=~/data/ptb
--config.rnn.nhid=100 --config.rnn.epochs=10 --config.rnn.batch_size=128
--config.rnn.eval_batch_size=256 --config.rnn.bptt=35 --config.search.k=10.
"""

import ml_collections


def get_config(arg=None):
  del arg
  c = ml_collections.ConfigDict()
  c.kind = "rnn"
  c.seed = 0
  c.search = ml_collections.ConfigDict()
  c.search.k = 5  # paper: 10
  c.search.keep_fraction = 0.25  # official RNN value
  c.keep_checkpoints = 3

  c.rnn = ml_collections.ConfigDict()
  c.rnn.data_dir = ""  # "" = synthetic corpus; or a PTB directory
  c.rnn.train_lines = 4000  # official proxy: first 4000/300/300 lines
  c.rnn.valid_lines = 300
  c.rnn.test_lines = 300
  c.rnn.nodes = 6
  c.rnn.ops = ()  # () = drawn from the seed
  c.rnn.nhid = 32  # paper: 100
  c.rnn.embedding_path = ""  # GloVe text file (paper: glove.6B.100d)
  c.rnn.embedding_range = 0.5
  c.rnn.init_range = 0.04
  c.rnn.epochs = 4  # paper: 10
  c.rnn.batch_size = 16  # paper: 128
  c.rnn.eval_batch_size = 8  # paper: 256
  c.rnn.bptt = 20  # paper: 35
  c.rnn.learning_rate = 20.0
  c.rnn.clip = 0.25
  c.rnn.weight_decay = 0.0
  c.rnn.patience = 4
  c.rnn.bucket = 0  # pad every window to bptt: one program
  c.rnn.candidates_per_program = 0  # 0: all k of a round vmapped together
  c.rnn.ppl_reference = 200.0
  c.rnn.ppl_weight = 0.25
  c.rnn.cost_weight = 1.0
  return c
