"""AutoShrink: progressive edge shrinking of CNN and RNN cells."""
