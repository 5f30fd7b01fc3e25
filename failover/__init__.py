"""kvdr failover package."""
