"""kvdr replicator package."""
