"""How jobs reach a Ray cluster: the local two-node cluster, and configs for real ones."""
