"""`python -m tasteprint.cli`: the same command line as `tasteprint`."""

from . import main

main()
