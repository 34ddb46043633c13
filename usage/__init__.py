"""Usage metering, data caps with fair-usage throttling, top-ups and Hotspot quotas."""
