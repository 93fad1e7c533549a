"""gRPC face of the scheduler."""
