"""fluid scheduler: queues a run of each periodic task once per slot, one leader at a time."""
