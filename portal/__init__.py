"""The subscribers' side: the walled-garden landing page and the self-service portal."""
