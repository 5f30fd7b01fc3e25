"""kvdr backups package."""
