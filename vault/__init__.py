"""kvdr vault package."""
