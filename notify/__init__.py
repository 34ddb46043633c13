"""Notifications: the outbox billing, payments and enforcement write to, the templates that
turn an event into text, the channels (SMS gateways, SMTP, Telegram) and the worker that
delivers each event once per channel and recipient."""
