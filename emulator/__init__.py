"""kvdr emulator package."""
