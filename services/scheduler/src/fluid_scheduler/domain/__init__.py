"""The scheduler's rules: slot arithmetic, missed-slot policy, leader election. No gRPC."""
