"""Classify a folder of images (or generated ones) with a torchvision model on every GPU Ray sees, through
tinydl.distributed.Predictor on Ray Data; the results go to Parquet and the throughput is printed.

    python examples/ray_classify.py DIR --out preds.parquet                 # MobileNetV2, real ImageNet weights
    python examples/ray_classify.py --rows 8 --size 64 --batch 4 --model mobilenet_v3_small   # generated images
    python examples/ray_classify.py DIR --address auto                      # on a running Ray cluster

The pipeline: file paths (or row ids) -> CPU tasks decode and preprocess each image like torchvision (resize
256, center crop 224, normalize; generated images: seeded noise) -> one tinydl actor per GPU (num_gpus=1;
Predictor converts the model once per actor and runs it on the WebGPU adapter of the GPU Ray assigned) -> Parquet
(path or id, top-1 label, top-5 ids and probabilities). Without GPUs, --workers CPU actors run on whatever
adapter tinydl finds (lavapipe on a machine without a GPU). On a cluster, DIR must be readable from every node.
mobilenet_v2 gets its real weights (loaded here once and shipped to the actors); other models random ones.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imagenet_common as common  # noqa: E402

from tinydl.distributed import Predictor  # noqa: E402

GENERATED_SEED = 0


def build_model(name: str, weights: dict | None):
    """The torchvision model, in the actor (Predictor converts it with tinydl.from_torch)."""
    import torch
    from tinydl.interop.torchvision_compat import import_torchvision
    model = getattr(import_torchvision().models, name)()
    if weights is not None:
        model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    return model.eval()


def decode(row: dict) -> dict:
    return {"path": row["path"], "image": common.preprocess(row["path"])}


def generate(batch: dict, size: int) -> dict:
    """Seeded noise images, each a function of its row id only (so reruns and worker counts agree)."""
    images = [np.random.default_rng([GENERATED_SEED, int(i)]).standard_normal((3, size, size), np.float32)
              for i in batch["id"]]
    return {"id": batch["id"], "image": np.stack(images)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", help="images to classify (default: --rows generated images)")
    parser.add_argument("--rows", type=int, default=64, help="generated images when no folder is given")
    parser.add_argument("--size", type=int, default=224, help="generated images' height and width")
    parser.add_argument("--model", default="mobilenet_v2", help="a torchvision classification model")
    parser.add_argument("--batch", type=int, default=16, help="images per forward")
    parser.add_argument("--workers", type=int, default=0,
                        help="actors (default: one per GPU Ray sees; without GPUs, 2 CPU actors)")
    parser.add_argument("--out", default="predictions.parquet", help="Parquet output folder")
    parser.add_argument("--address", default=None, help="a Ray cluster to join (e.g. auto); default: a local one")
    args = parser.parse_args(argv)
    if args.folder and not os.path.isdir(args.folder):
        parser.error(f"not a folder: {args.folder}")

    import ray
    import ray.data
    from ray import cloudpickle
    cloudpickle.register_pickle_by_value(common)  # the actors need its functions, not the examples/ folder
    ray.init(address=args.address)  # None: a local Ray with this host's CPUs and GPUs
    ray.data.DataContext.get_current().enable_progress_bars = False
    gpus, cpus = int(ray.cluster_resources().get("GPU", 0)), ray.cluster_resources().get("CPU", 1)
    workers = args.workers or gpus or 2
    # one GPU per actor; CPU actors share what leaves one logical CPU free for the decode and write tasks
    # (actors holding every CPU would starve those tasks and the pipeline would wait forever)
    resources = dict(num_gpus=1) if gpus else dict(num_cpus=min(1.0, max((cpus - 1) / workers, 0.01)))

    if args.folder:
        files = sorted(os.path.join(args.folder, n) for n in os.listdir(args.folder)
                       if n.lower().endswith((".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")))
        ds = ray.data.from_items([{"path": os.path.abspath(f)} for f in files]).map(decode)
        rows = len(files)
    else:
        ds = ray.data.range(args.rows).map_batches(functools.partial(generate, size=args.size))
        rows = args.rows
    weights = common.tinydl.load(common.weights_path()) if args.model == "mobilenet_v2" else None
    predictor = dict(model=functools.partial(build_model, args.model, weights), inputs="image", logits=False,
                     top_k=5, labels=common.categories(), pad_to=args.batch)
    print(f"{rows} images, {args.model}, batches of {args.batch}, {workers} actors "
          f"({'1 GPU each' if gpus else 'CPU: ' + str(resources)}), Ray {ray.__version__}")

    start = time.perf_counter()
    ds.map_batches(Predictor, fn_constructor_kwargs=predictor, batch_size=args.batch,
                   compute=ray.data.ActorPoolStrategy(size=workers),
                   **resources).write_parquet(args.out)
    seconds = time.perf_counter() - start
    print(f"{rows} images in {seconds:.1f} s: {rows / seconds:.1f} images/s (actor start-up and the first batch's "
          f"kernel compilation included) -> {args.out}")
    import pyarrow.parquet as pq
    table = pq.read_table(args.out)
    if table.num_rows != rows:
        print(f"ERROR: {table.num_rows} rows written, {rows} expected", file=sys.stderr)
        return 1
    key = "path" if args.folder else "id"
    for row in sorted(table.select([key, "label", "top_k_scores"]).to_pylist(), key=lambda r: r[key])[:5]:
        name = os.path.basename(row[key]) if args.folder else row[key]
        print(f"  {name}: {row['label']} ({row['top_k_scores'][0] * 100:.1f}%)")
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
