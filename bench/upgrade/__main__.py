import sys

from bench.upgrade.cli import main

sys.exit(main())
