"""kvdr chaos package."""
