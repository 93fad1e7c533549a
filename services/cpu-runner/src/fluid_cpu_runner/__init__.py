"""fluid cpu-runner: executes cpu-bound runs in a process of their own or a Kubernetes Job."""
