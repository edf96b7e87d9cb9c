"""scalekit-auth: fresh OAuth tokens from Scalekit's token vault, never written to disk."""

__version__ = "0.1.0"
