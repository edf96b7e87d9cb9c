"""`python3 -m scalekit_auth ...` runs the scalekit-auth command line."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
