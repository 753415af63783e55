"""`python -m benchmark`: the command line."""
import sys

from benchmark.cli import main

sys.exit(main())
