import sys

from hypersiren.cli import main

sys.exit(main())
