"""`python -m modelreg` runs the command-line interface."""

from modelreg.cli.app import main

main()
