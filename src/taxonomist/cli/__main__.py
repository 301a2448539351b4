"""``python -m taxonomist.cli``."""

from taxonomist.cli import main

main()
