"""Scaling out on Ray: distributed tagging and hyperparameter sweeps (optional extra `winner[ray]`)."""
