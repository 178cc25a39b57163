"""Plots and drawings of searches and architectures."""
