"""PyInstaller's entry script: the same ``kith`` command as ``[project.scripts]``."""

import sys

from app.main import main

if __name__ == "__main__":
    sys.exit(main())
