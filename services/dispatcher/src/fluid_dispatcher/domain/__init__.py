"""The dispatcher's domain: its use cases, the rules runs change by, and the store they
need (``ports``).

Nothing here imports ``store`` or ``api``: those import the domain.
"""
