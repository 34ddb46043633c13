"""Channel adapters: SMS gateways, SMTP, Telegram. Thin: they speak the provider's API and
return typed results; the worker decides what a result means for the delivery."""
