#!/usr/bin/env python3
"""Print a fresh token for a service: TOKEN=$(python3 get_token.py gmail). Same as `scalekit-auth token`."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from scalekit_auth.cli import get_token_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(get_token_main())
