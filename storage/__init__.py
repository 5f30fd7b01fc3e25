"""kvdr storage package."""
