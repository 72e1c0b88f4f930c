"""Entry points, each run as ``python -m jobs.<name>``: thin wrappers over ``mnist_core``.

Run that way, SIGTERM exits 143 from the first line on: while a job's modules (pyarrow, Ray)
are still being imported, nothing is held and nothing needs saying, so the handler set here
just exits; ``jobs._cli.run`` then installs the one that stops the job cleanly (and stops at
once if a compiled module's import swallowed that exit). (While
``python -m`` imports this package, ``sys.argv[0]`` is still ``"-m"``; importing ``jobs``
from elsewhere, as the tests do, changes no handler.)
"""

import signal
import sys

from mnist_core.signals import exit_at_once

if sys.argv[:1] == ["-m"]:
    signal.signal(signal.SIGTERM, exit_at_once)
