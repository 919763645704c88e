"""``python -m optzoo.report DIR``."""

import sys

from optzoo.report import main

sys.exit(main())
