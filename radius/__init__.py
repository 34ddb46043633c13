"""AAA: the RADIUS policy, accounting, NAS inventory and the FreeRADIUS integration."""
