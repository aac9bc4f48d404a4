"""The runtime's cache of bind groups, per pipeline: a replayed or repeated plan binds the same buffers to the same
kernels each call, and making a bind group costs more host time than looking one up.

A bind group holds its pipeline (its compiled code) and its buffers alive, so the cache drops a pipeline's groups
with the pipeline (`drop_pipeline`, when the pipeline cache lets it go) and the groups that name a buffer the pool
gives back (`drop_buffers`); past `kept` groups over every pipeline it starts afresh."""
from __future__ import annotations

KEPT = 8192  # bind groups kept for reuse, over every pipeline


class BindGroups:
    def __init__(self, device, kept: int = KEPT):
        self.device, self.kept = device, kept
        # pipeline -> {the GPU buffers bound, in order: bind group}; keyed by the objects themselves (identity hash;
        # the bind group holds them alive anyway)
        self.by_pipeline: dict[object, dict[tuple, object]] = {}
        self._count = 0

    def get(self, pipeline, gpus):
        """The bind group of pipeline over these buffers (binding i: gpus[i], whole), made on first use."""
        groups = self.by_pipeline.get(pipeline)
        if groups is None:
            groups = self.by_pipeline[pipeline] = {}
        key = tuple(gpus)
        bg = groups.get(key)
        if bg is None:
            if self._count > self.kept:
                # counted again first: a compile thread may have dropped a pipeline's groups meanwhile
                self._count = sum(len(g) for g in self.by_pipeline.values())
            if self._count > self.kept:
                self.by_pipeline.clear()
                self._count = 0
                groups = self.by_pipeline[pipeline] = {}
            entries = [{"binding": i, "resource": {"buffer": g, "offset": 0, "size": g.size}}
                       for i, g in enumerate(gpus)]
            bg = groups[key] = self.device.create_bind_group(layout=pipeline.get_bind_group_layout(0), entries=entries)
            self._count += 1
        return bg

    def drop_pipeline(self, pipeline) -> None:
        self._count -= len(self.by_pipeline.pop(pipeline, ()))

    def drop_buffers(self, dropped_ids: set[int]) -> None:
        """Forget the groups that bind any buffer whose id() is in dropped_ids."""
        for pipeline, groups in list(self.by_pipeline.items()):
            kept = {gpus: bg for gpus, bg in groups.items() if not any(id(g) in dropped_ids for g in gpus)}
            self._count -= len(groups) - len(kept)
            if kept:
                self.by_pipeline[pipeline] = kept
            else:  # (the key alone would hold the pipeline)
                del self.by_pipeline[pipeline]
