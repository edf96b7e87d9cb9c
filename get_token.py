#!/usr/bin/env python3
# /// script
# requires-python = ">=3.11"
# dependencies = [
#   "scalekit-sdk-python>=2.21,<3",
#   "python-dotenv>=1.0,<2",
#   "requests>=2.31,<3",
#   "filelock>=3.12,<5",
#   "cryptography>=42",
#   "mcp>=2.3,<3",
# ]
# ///
"""Print a fresh token for a service: TOKEN=$(python3 get_token.py gmail). Same as `scalekit-auth token`."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

if __name__ == "__main__":
    from scalekit_auth.fastpath import tokens_from_agent  # a warm agent answers, loading almost nothing

    code = tokens_from_agent(sys.argv[1:])
    if code is None:
        from scalekit_auth.cli import get_token_main

        code = get_token_main()
    sys.exit(code)
