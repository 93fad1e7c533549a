"""The scheduler's rules: slot arithmetic, missed-slot policy, leader election, firing, and
the ports they need (``ports``).

No gRPC; nothing here imports ``store``, ``api`` or ``dispatcher``: those import the domain.
"""
