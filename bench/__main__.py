"""``python -m bench``: the policy-engine benchmark (the only one so far)."""

import sys

from .policy_engine import main

sys.exit(main())
