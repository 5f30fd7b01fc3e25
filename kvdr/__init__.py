"""kvdr: multi-region high availability and disaster recovery for Azure Key Vault."""

__version__ = "0.1.0"

__all__ = ["__version__"]
