"""Enforcement: making the network follow billing (RFC 5176 CoA/Disconnect, RouterOS API)."""
