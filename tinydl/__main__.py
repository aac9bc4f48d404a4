"""`python -m tinydl ...`: the `tinydl` command (tinydl/cli/)."""
from .cli import main

main()
