"""Where the leader lease and each task's slot cursor live: memory or Redis."""
