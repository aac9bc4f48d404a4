"""`python -m tinydl.testing.fuzz`: see cli.main."""
import sys

from .cli import main

sys.exit(main())
