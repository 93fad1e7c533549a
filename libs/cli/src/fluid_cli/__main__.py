"""`python -m fluid_cli` runs the `fluid` command."""

from .main import main

main()
