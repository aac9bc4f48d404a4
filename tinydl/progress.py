"""A progress bar on stderr while a first call compiles its kernels (kernels done / total): shown only where
stderr is a terminal and Options.progress is on (TINYDL_PROGRESS=0 turns it off), and only once the work has
lasted Options.progress_delay_s, so a plan of a few kernels prints nothing. The bar is removed when the work is
done."""
from __future__ import annotations

import sys


class Silent:
    """The bar where none is shown: the same calls, doing nothing."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n: int = 1) -> None:
        pass


def shown(opts) -> bool:
    """Whether bars are shown under Options opts here: on, and stderr a terminal."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(opts.progress and isatty is not None and isatty())


def bar(total: int, what: str, opts):
    """A context manager whose update(n) counts n of `total` kernels done (`what`: "compiling kernels"), or a Silent
    one where no bar is shown."""
    if total <= 0 or not shown(opts):
        return Silent()
    from tqdm import tqdm
    return tqdm(total=total, desc=f"tinydl: {what}", unit="kernel", delay=opts.progress_delay_s, leave=False, file=sys.stderr,
                dynamic_ncols=True)
