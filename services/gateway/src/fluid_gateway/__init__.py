"""fluid gateway: HTTP over the dispatcher, history and scheduler (no store of its own)."""
