"""Lowering: backend choices made once, on a plan-cache miss, before fusion."""
from __future__ import annotations

from dataclasses import dataclass

from ..ops import Node
from .target import Target


@dataclass
class Lowered:
    order: list[Node]   # the lowered graph, walked
    roots: list[int]    # its roots' positions
    keys: list[int]     # each position's key in the plan: the original walk position of the node it stands for


def lower(order: list[Node], roots: list[int], target: Target, chooser=None) -> Lowered:
    return Lowered(order, list(roots), list(range(len(order))))


class Rules:
    def key(self) -> tuple:
        return ()


RULES = Rules()
