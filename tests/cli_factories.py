"""Models for tests/test_cli.py, named on the command line as `cli_factories:NAME` (module path, from this folder)
or `tests/cli_factories.py:NAME` (file path)."""
import torch


def tiny():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(4, 2))


class TwoInputs(torch.nn.Module):
    """Named inputs (--example-inputs): an image and an int64 index."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(6, 3)

    def forward(self, x, ids):
        return self.fc(x)[ids], x.sum()


class Drifting(torch.nn.Module):
    """Deliberately different in tinydl: fx bakes the call count in at conversion (1), torch's own call then adds 2."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x + self.calls


class Determinant(torch.nn.Module):
    """An op tinydl does not have (torch.linalg.det): conversion fails, naming it."""

    def forward(self, x):
        return torch.linalg.det(x)


NOT_A_MODEL = 3


def a_list():
    return [1, 2]

