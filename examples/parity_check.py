"""Point this at your own torch model: it builds it, converts it with tinydl.from_torch, runs both on the same
random input and prints tinydl.testing.compare()'s per-output report.

    python examples/parity_check.py torchvision.models:resnet18 --input-shape 1,3,224,224
    python examples/parity_check.py my_package.models:build_net --input-shape 1,3,64,64 --kwargs '{"width": 32}'
    python examples/parity_check.py ./my_model.py:Net --input-shape 2,16 --weights net.safetensors
    python examples/parity_check.py my_lm:make --input-shape 1,12 --dtype int64 --high 1000   # token ids

MODEL is `module.path:factory` or `file.py:factory`; the factory (a function or a class) is called with
--kwargs and must return a torch.nn.Module. --input-shape may be given once per forward argument. --weights
loads a .safetensors/.pt state_dict (through tinydl.load) into the torch model first. Exit status: 0 parity,
1 a difference beyond the tolerances, 2 ops tinydl cannot map (listed, all of them).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys

import numpy as np


def load_factory(spec: str):
    if ":" not in spec:
        raise SystemExit(f"MODEL must be module.path:factory or file.py:factory, got {spec!r}")
    where, name = spec.rsplit(":", 1)
    if where.endswith(".py"):
        path = os.path.abspath(where)
        sys.path.insert(0, os.path.dirname(path))  # the file's own imports of its neighbours
        mod_spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    else:
        if where.split(".")[0] in ("torchvision", "timm", "transformers"):
            from tinydl.interop.torchvision_compat import import_torchvision
            import_torchvision()  # torchvision on the CPU-only torch wheel (timm/transformers import it too)
        module = importlib.import_module(where)
    obj = module
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--input-shape wants integers like 1,3,224,224, got {text!r}") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("model", help="module.path:factory or file.py:factory")
    parser.add_argument("--input-shape", type=parse_shape, action="append", required=True,
                        help="shape of one forward input, e.g. 1,3,224,224 (repeat for several inputs)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "int64", "int32"],
                        help="input dtype (integers: uniform in [0, --high))")
    parser.add_argument("--high", type=int, default=100, help="exclusive upper bound of integer inputs")
    parser.add_argument("--kwargs", default="{}", help="JSON keyword arguments for the factory")
    parser.add_argument("--weights", help="a .safetensors/.pt state_dict to load into the torch model first")
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--atol", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    import tinydl
    from tinydl.interop import UnsupportedTorchOps
    from tinydl.testing import compare

    torch.manual_seed(args.seed)
    model = load_factory(args.model)(**json.loads(args.kwargs))
    if not isinstance(model, torch.nn.Module):
        raise SystemExit(f"{args.model} returned {type(model).__name__}, not a torch.nn.Module")
    if args.weights:
        state = tinydl.load(args.weights)
        result = model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        print(f"loaded {args.weights}: {len(state)} tensors ({result})")
    model.eval()

    rng = np.random.default_rng(args.seed)
    if args.dtype == "float32":
        inputs = [rng.standard_normal(s).astype(np.float32) for s in args.input_shape]
    else:
        inputs = [rng.integers(0, args.high, size=s).astype(args.dtype) for s in args.input_shape]
    try:
        converted = tinydl.from_torch(model, example_inputs=tuple(torch.from_numpy(x) for x in inputs))
    except UnsupportedTorchOps as e:
        print(e, file=sys.stderr)
        return 2
    shapes = ", ".join("x".join(map(str, s)) for s in args.input_shape)
    print(f"{args.model} ({type(model).__name__}, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M "
          f"parameters) on {tinydl.device_info()['adapter']}, input {shapes} {args.dtype}")
    report = compare(model, converted, *inputs, rtol=args.rtol, atol=args.atol, title=type(model).__name__)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
