"""`python -m ngate`: the same command line as the `ngate` console script."""
import sys

from ngate.cli import main

sys.exit(main())
