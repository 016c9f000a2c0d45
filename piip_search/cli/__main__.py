import sys

from piip_search.cli import main

sys.exit(main())
