import sys

from dualsr.cli import main

sys.exit(main())
