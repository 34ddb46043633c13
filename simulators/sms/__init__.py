"""SMS provider and Telegram Bot API simulators: real HTTP servers on 127.0.0.1 speaking
each provider's documented API."""
