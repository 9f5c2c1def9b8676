"""`python -m pybuild build ...`"""

import sys

from .cli import main

sys.exit(main())
