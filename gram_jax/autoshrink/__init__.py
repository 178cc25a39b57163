"""AutoShrink: progressive edge shrinking of a DAG cell (ShrinkCNN/ShrinkRNN).

  strategy    the edge-shrinking strategy, generic over what is shrunk
  cnn         the CNN cell: masked supernet, exact network, MACs, evaluator
  shrinkcnn   the ImageNet ShrinkCNN builder and the released cell
  command     `gram-jax autoshrink --config <file> --workdir <dir>`
"""
