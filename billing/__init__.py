"""Billing: packages (plans), subscribers and their billing state."""
