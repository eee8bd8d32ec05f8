"""`python -m remotebottle` is `rbottle`."""

import sys

from remotebottle.cli import main

sys.exit(main())
