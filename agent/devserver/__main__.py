"""`python -m agent.devserver [options]`: the dev-server without the top-level CLI."""

import sys

from agent.devserver.cli import main

sys.exit(main(sys.argv[1:]))
