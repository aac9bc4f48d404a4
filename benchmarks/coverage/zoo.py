"""What the coverage run tries: torchvision's models by module, one model per timm module, the Hugging Face list
(hf.py). An Entry builds its model with random weights and the smallest inputs its torch forward accepts."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from tinydl.cli import models as cli_models

SOURCES = ("torchvision", "timm", "hf")
# torchvision's modules, in report order; quantized models run torch's int8 kernels (fbgemm/qnnpack), which
# tinydl has no counterpart of: excluded
TV_GROUPS = ("classification", "segmentation", "detection", "video", "optical_flow")
TV_EXCLUDED = {"quantization": "int8 models on torch's quantized CPU kernels (fbgemm/qnnpack): tinydl converts "
                               "float models"}


class TorchFailed(Exception):
    """torch itself cannot run the model here (at any input size tried): not a tinydl failure."""


@dataclass
class Built:
    model: object           # torch module, eval mode, weights drawn
    args: tuple             # positional inputs (torch tensors, or lists of them)
    kwargs: dict            # keyword inputs
    inputs: str             # the inputs' shapes, for the report


@dataclass
class Entry:
    source: str                       # torchvision | timm | hf
    group: str                        # torchvision's module, timm's module, or the HF task
    name: str                         # the model's name in its zoo
    build: Callable[[str], Built] | None = field(default=None, repr=False)   # size ("small" / "default") -> Built
    params: int | None = None
    skip: str = ""                    # why it is not tried

    @property
    def key(self) -> str:
        return f"{self.source}:{self.name}"


def shapes(args, kwargs) -> str:
    """'1x3x32x32', lists in brackets, keywords by name."""
    def one(v):
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(one(x) for x in v) + "]"
        return "x".join(map(str, v.shape)) if hasattr(v, "shape") else repr(v)
    return ", ".join([one(a) for a in args] + [f"{k}={one(v)}" for k, v in kwargs.items()])


def first_that_runs(make, sizes):
    """Built from make(size) for the first size whose torch forward runs; TorchFailed (torch's error at the
    largest size) when none does."""
    import torch
    error = None
    for size in sizes:
        try:
            model, args, kwargs = make(size)
            with torch.no_grad():
                model(*args, **kwargs)
            return Built(model, args, kwargs, shapes(args, kwargs))
        except Exception as e:  # noqa: BLE001 - too small for the model, or torch itself fails: the next size
            error = e
    from .check import describe
    raise TorchFailed(describe(error))


def _randn(shape, seed=0):
    import torch
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape, dtype=np.float32))


# -- torchvision -------------------------------------------------------------------------------------------
# input sizes tried, smallest first ("small"), and the model's own default last
TV_SIZES = {"classification": (32, 64, 128, 224), "segmentation": (32, 64, 128, 224), "detection": (64, 128, 320),
            "video": ((4, 32), (8, 64), (8, 112), (16, 224)), "optical_flow": (64, 128, 224)}
_RESIZING_DETECTORS = ("rcnn", "retinanet", "fcos")  # their transform resizes to min_size..max_size (800..1333)


def _tv_builder(group: str, name: str):
    def make(size):
        import torch
        kwargs = {}
        if name.startswith("vit_"):
            kwargs["image_size"] = size  # its position table is tied to the image size
        if group == "detection" and any(w in name for w in _RESIZING_DETECTORS):
            kwargs.update(min_size=size, max_size=size)
        torch.manual_seed(0)
        model, _ = cli_models.load(f"torchvision:{name}", **kwargs)
        if group == "detection":
            return model, ([_randn((3, size, size))],), {}
        if group == "video":
            frames, side = size
            return model, (_randn((1, 3, frames, side, side)),), {}
        if group == "optical_flow":
            return model, (_randn((1, 3, size, size)), _randn((1, 3, size, size), 1)), {}
        return model, (_randn((1, 3, size, size)),), {}

    def build(size_mode):
        from tinydl.testing.weights import unit_variance
        sizes = TV_SIZES[group] if size_mode == "small" else TV_SIZES[group][-1:]
        built = first_that_runs(make, sizes)
        if group in ("classification", "segmentation", "video", "detection"):
            unit_variance(built.model, lambda: built.args)  # logits of std ~1, so the tolerance means something
            # (and detection scores that do not all saturate to 1, whose order would be a tie)
        return built
    return build


def torchvision_entries() -> list[Entry]:
    from tinydl.interop.torchvision_compat import import_torchvision
    tv = import_torchvision()
    out = []
    for group in TV_GROUPS + tuple(TV_EXCLUDED):
        module = tv.models if group == "classification" else getattr(tv.models, group)
        for name in tv.models.list_models(module=module):
            try:
                params = list(tv.models.get_model_weights(name))[0].meta.get("num_params")
            except Exception:  # noqa: BLE001 - a model without a weights enum: its size is unknown
                params = None
            out.append(Entry("torchvision", group, name, _tv_builder(group, name), params,
                             TV_EXCLUDED.get(group, "")))
    return out


# -- timm: one model per module ----------------------------------------------------------------------------
SIZE_WORDS = ("test", "atto", "femto", "pico", "nano", "micro", "xxxs", "xxs", "tiny", "xs", "mini", "small", "lite",
              "light")
TIMM_CANDIDATES = 6  # the names that look smallest; the one with the fewest parameters among them is tried
TIMM_SIZES = (64, 128, 224)


def _looks_small(name: str):
    tokens = re.split(r"[_.]", name)
    words = [SIZE_WORDS.index(t) for t in tokens if t in SIZE_WORDS]
    numbers = [int(n) for n in re.findall(r"\d+", name)]
    return min(words, default=len(SIZE_WORDS)), numbers[:1], len(name), name


def timm_families(cache) -> dict[str, tuple[str, int]]:
    """{timm module: (its smallest model, parameters)}: the names that look smallest, counted on the meta device
    (nothing allocated); cached per timm version in `cache` (a JSON file), as counting takes a minute."""
    import timm
    import torch
    if cache and cache.is_file():
        data = json.loads(cache.read_text())
        if data.get("timm") == timm.__version__:
            return {k: tuple(v) for k, v in data["families"].items()}
    families = {}
    for module in timm.list_modules():
        counts = []
        for name in sorted(timm.list_models(module=module), key=_looks_small)[:TIMM_CANDIDATES]:
            try:
                with torch.device("meta"):
                    m = timm.create_model(name, pretrained=False)
                counts.append((sum(p.numel() for p in m.parameters()), name))
            except Exception:  # noqa: BLE001 - a variant that cannot be built: not picked
                continue
        if counts:
            params, name = min(counts)
            families[module] = (name, params)
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"timm": timm.__version__, "families": families}, indent=1))
    return families


def _timm_builder(name: str):
    def make(size):
        import torch
        torch.manual_seed(0)
        kwargs = {"img_size": size} if size else {}
        try:  # models whose tables are tied to the resolution take it as img_size; the others refuse it
            model, default = cli_models.load(f"timm:{name}", **kwargs)
        except TypeError:
            if not kwargs:
                raise
            model, default = cli_models.load(f"timm:{name}")
        h, w = (size, size) if size else default[-2:]
        return model, (_randn((1, 3, h, w)),), {}

    def build(size_mode):
        from tinydl.testing.weights import randomize_constants
        built = first_that_runs(make, TIMM_SIZES + (None,) if size_mode == "small" else (None,))
        randomize_constants(built.model)  # zero biases, 0/1 norm statistics: paths that would contribute nothing
        return built
    return build


def timm_entries(cache=None) -> list[Entry]:
    return [Entry("timm", module, name, _timm_builder(name), params)
            for module, (name, params) in sorted(timm_families(cache).items())]


def entries(sources=SOURCES, timm_cache=None) -> list[Entry]:
    out = []
    if "torchvision" in sources:
        out += torchvision_entries()
    if "timm" in sources:
        out += timm_entries(timm_cache)
    if "hf" in sources:
        from .hf import hf_entries
        out += hf_entries()
    return out
