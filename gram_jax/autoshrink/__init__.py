"""AutoShrink: progressive edge shrinking of a DAG cell (ShrinkCNN/ShrinkRNN).

strategy    the edge-shrinking strategy, generic over what is shrunk
cnn         the CNN cell: masked supernet, exact network, MACs, evaluator
shrinkcnn   the ImageNet ShrinkCNN builder and the released cell
command     `gram-jax autoshrink --config <file> --workdir <dir>`
rnn         the ShrinkRNN cell (masked + exact) and its language model
lm          PTB-format corpora, BPTT windows, (NT-A)SGD training pieces
rnn_search  the RNN proxy evaluator (`kind = "rnn"`)
train_rnn   `gram-jax train-rnn`: full LM training of a cell
"""
