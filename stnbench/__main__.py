import sys

from stnbench.cli import main

sys.exit(main())
