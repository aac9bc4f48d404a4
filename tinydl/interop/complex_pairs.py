"""Complex tensors in an exported graph, computed as float pairs: tinydl has no complex dtype, but the complex
arithmetic models use (rotary embeddings as `polar` / `view_as_complex` / a product / `view_as_real`: Llama 4's,
Meta's reference Llama) maps onto real ops over a trailing dim of 2 (real, imaginary) — exactly the layout
`view_as_real` gives, so the views in and out become no-ops.

`rewrite(graph)` replaces every node whose value is complex with ATen ops on such a pair tensor. An op on complex
values outside the ones below is returned by name (ExportProgram.missing lists it with the other missing ops): never
run on the pairs as if they were real.
"""
from __future__ import annotations

import functools


@functools.cache
def _ops():
    """(aten, same, dim_arg, shape_arg, elementwise): made on first use (torch imported only then). same: ops whose
    complex result is the same op on the pairs; dim_arg: op -> the position of a dim argument (counted from the
    end, it moves one further); shape_arg: ops taking a shape (the pair dim appended); elementwise: + and -."""
    import torch
    aten = torch.ops.aten
    return (aten, {aten.clone.default, aten.alias.default, aten.contiguous.default, aten.detach.default},
            {aten.slice.Tensor: 1, aten.select.int: 1, aten.unsqueeze.default: 1, aten.squeeze.dim: 1,
             aten.cat.default: 1, aten.stack.default: 1},
            {aten.view.default, aten.reshape.default, aten._unsafe_view.default, aten.expand.default},
            {aten.add.Tensor, aten.sub.Tensor})


COMPUTED = "tinydl computes complex values as float pairs through polar, view_as_complex/view_as_real, +, -, * and "\
           "shape ops"


class ComplexUnsupported(NotImplementedError):
    """_pair_op's refusal: op says what is not supported."""

    def __init__(self, op: str):
        self.op = op
        super().__init__(op)


def _is_node(a) -> bool:
    return type(a).__name__ == "Node" and hasattr(a, "meta")


def _is_complex(node) -> bool:
    val = node.meta.get("val") if _is_node(node) else None
    return getattr(val, "is_complex", lambda: False)()


def _rank(node) -> int:
    return node.meta["val"].dim()


def rewrite(graph) -> dict[str, str | None]:
    """Rewrite the fx graph's complex values as pairs in place. Returns what it could not rewrite: node name -> what
    is unsupported there (those nodes, and the complex values computed from them, stay as they were; a rewritten
    node that one of them still reads maps to None: not a failure of its own)."""
    aten = _ops()[0]
    pairs: dict = {}  # complex node -> the node of its pair tensor
    unsupported: dict[str, str | None] = {}  # node name -> what is unsupported there
    blocked: set = set()  # nodes left as they were: unsupported, or computed from one that is
    for node in list(graph.nodes):
        if node.op != "call_function":
            continue
        inputs = [a for a in node.all_input_nodes if a in pairs or _is_complex(a)]
        if not _is_complex(node) and not inputs and node.target is not aten.view_as_complex.default:
            continue
        if blocked.intersection(inputs):  # follows from a failure already named
            blocked.add(node)
            continue
        try:
            with graph.inserting_before(node):
                out = _pair_op(graph, node, pairs)
        except ComplexUnsupported as e:
            unsupported[node.name] = e.op
            blocked.add(node)
            continue
        if out is None:  # a node that only checked metadata
            graph.erase_node(node)
        elif _is_complex(node):
            pairs[node] = out
        else:  # a real result (view_as_real): the pair tensor is it
            node.replace_all_uses_with(out)
            graph.erase_node(node)
    for node in reversed(list(pairs)):  # complex nodes no longer used once all are rewritten
        if node.users:  # read by a blocked node: not a failure of its own
            unsupported[node.name] = None
        else:
            graph.erase_node(node)
    return unsupported


def _pair_op(graph, node, pairs):
    aten, _SAME, _DIM_ARG, _SHAPE_ARG, _ELEMENTWISE = _ops()
    target, args = node.target, list(node.args)
    call = graph.call_function

    def pair(a):
        if _is_node(a) and a not in pairs and _is_complex(a):
            raise ComplexUnsupported(f"'{a.name}', a complex parameter, buffer or input (tinydl has no complex dtype)")
        return pairs.get(a, a) if _is_node(a) else a

    def end_dim(dim):
        return dim - 1 if dim < 0 else dim  # dims counted from the end move past the pair dim

    if target is aten._assert_tensor_metadata.default:
        return None
    if target is aten.view_as_complex.default:
        return args[0]
    if target is aten.view_as_real.default:
        return pair(args[0])
    if target is aten.polar.default:
        magnitude, angle = args
        return call(aten.stack.default, ([call(aten.mul.Tensor, (magnitude, call(aten.cos.default, (angle,)))),
                                          call(aten.mul.Tensor, (magnitude, call(aten.sin.default, (angle,))))], -1))
    if target is aten.mul.Tensor:
        a, b = args
        ca = _is_node(a) and (a in pairs or _is_complex(a))
        cb = _is_node(b) and (b in pairs or _is_complex(b))
        if ca and cb:
            a0, a1, b0, b1 = (call(aten.select.int, (pair(x), -1, i)) for x in (a, b) for i in (0, 1))
            re = call(aten.sub.Tensor, (call(aten.mul.Tensor, (a0, b0)), call(aten.mul.Tensor, (a1, b1))))
            im = call(aten.add.Tensor, (call(aten.mul.Tensor, (a0, b1)), call(aten.mul.Tensor, (a1, b0))))
            return call(aten.stack.default, ([re, im], -1))
        c, r = (a, b) if ca else (b, a)
        if _is_node(r):  # a real tensor scales both parts
            r = call(aten.unsqueeze.default, (r, -1))
        return call(aten.mul.Tensor, (pair(c), r))
    if target in _ELEMENTWISE and all(_is_node(a) and _is_complex(a) for a in args[:2]):
        return call(target, (pair(args[0]), pair(args[1]), *args[2:]), dict(node.kwargs))
    if target in _SAME:
        return call(target, (pair(args[0]), *args[1:]), dict(node.kwargs))
    if target in _DIM_ARG:
        i = _DIM_ARG[target]
        if len(args) > i:
            args[i] = end_dim(args[i])
        elif target in (aten.cat.default, aten.stack.default):
            args.append(0)
        args[0] = [pair(a) for a in args[0]] if isinstance(args[0], (list, tuple)) else pair(args[0])
        return call(target, tuple(args), dict(node.kwargs))
    if target in _SHAPE_ARG:
        return call(target, (pair(args[0]), [*args[1], 2]), dict(node.kwargs))
    if target is aten.permute.default:
        rank = _rank(node)
        dims = [d % rank for d in args[1]]
        return call(target, (pair(args[0]), [*dims, rank]))
    if target is aten.transpose.int:
        rank = _rank(node)
        return call(target, (pair(args[0]), args[1] % rank, args[2] % rank))
    raise ComplexUnsupported(f"{target} on a complex tensor")
