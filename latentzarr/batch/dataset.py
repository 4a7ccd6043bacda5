"""``LatentImageDataset``: a ``torch.utils.data.IterableDataset`` streaming decoded batches for training loops."""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from latentzarr.batch.plan import check_batch_size, plan_selection
from latentzarr.batch.run import decode_checked, decode_ids_task, open_source

if TYPE_CHECKING:  # pragma: no cover
    from latentzarr.models import LatentAutoencoder
    from latentzarr.store import LatentStore

__all__ = ["LatentImageDataset"]


class LatentImageDataset(IterableDataset):
    """Decoded batches of a latent store, streamed from a Dask cluster (``client``) or decoded locally.

    Each item is a dict ``{"image": tensor (B, 3, H, W), "id": list of B ids}``; the tensor is uint8, or
    float32 in [0, 1] with ``dtype="float32"``. A batch holds ids of one source array only (one model and
    shape), so a selection spanning arrays gives some batches shorter than ``batch_size``. Use it with
    ``DataLoader(dataset, batch_size=None)``.

    Parameters
    ----------
    store_or_url
        A :class:`~latentzarr.store.LatentStore` or its URL.
    ids
        Selection (None: every committed id); validated and looked up at construction.
    batch_size
        Images per batch (and per decode forward pass).
    client
        A ``distributed.Client`` / :class:`~latentzarr.cluster.LatentClient`: batches are decoded as cluster
        tasks, ``prefetch`` in flight. Use ``num_workers=0`` in the DataLoader then (the cluster is the
        parallelism; a client cannot be shared with DataLoader worker processes).
    model
        Decoder name (or loaded model, local only); None: the model recorded with each array.
    shuffle, seed
        Shuffle ids within each array and the order of batches, with ``numpy.random.default_rng([seed, epoch])``;
        call :meth:`set_epoch` before each epoch for a new order (as with ``DistributedSampler``).
    prefetch
        Batches decoded or read ahead (bounded).
    dtype
        ``"uint8"`` or ``"float32"``.
    drop_last
        Drop batches shorter than ``batch_size``.

    Notes
    -----
    With ``num_workers > 0`` every DataLoader worker takes every ``num_workers``-th batch of the epoch's order
    (the same order in every worker, since it depends only on seed and epoch), so each id appears once per epoch.
    """

    def __init__(self, store_or_url: LatentStore | str, ids: Iterable[str] | None = None, *, batch_size: int = 8,
                 client: Any = None, model: LatentAutoencoder | str | None = None, shuffle: bool = False,
                 seed: int = 0, prefetch: int = 2, dtype: str = "uint8", drop_last: bool = False,
                 storage_options: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.batch_size = check_batch_size(batch_size)
        if prefetch < 1:
            raise ValueError(f"Expected prefetch >= 1. Got {prefetch!r} instead.")
        if dtype not in ("uint8", "float32"):
            raise ValueError(f"Expected dtype 'uint8' or 'float32'. Got {dtype!r} instead.")
        if client is not None and model is not None and not isinstance(model, str):
            raise TypeError("Expected model as a name with a client (workers load it). Got a loaded model instead.")
        self.store = open_source(store_or_url, storage_options)
        self.storage_options = storage_options
        self.arrays = plan_selection(self.store, ids)
        self.client = getattr(client, "client", client)
        self.model = model
        self.shuffle = shuffle
        self.seed = seed
        self.prefetch = prefetch
        self.dtype = dtype
        self.drop_last = drop_last
        self.epoch = 0
        self._models: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_models"] = {}  # each DataLoader worker loads its own decoder
        return state

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose shuffled order the next iteration uses."""
        self.epoch = int(epoch)

    def batches(self) -> list[tuple[str, tuple[str, ...]]]:
        """This epoch's batches as (source array, ids), before splitting among DataLoader workers."""
        rng = np.random.default_rng([self.seed, self.epoch]) if self.shuffle else None
        out = []
        for arr in self.arrays:
            ids = list(arr.ids)
            if rng is not None:
                ids = [ids[i] for i in rng.permutation(len(ids))]
            for start in range(0, len(ids), self.batch_size):
                part = tuple(ids[start:start + self.batch_size])
                if len(part) == self.batch_size or not self.drop_last:
                    out.append((arr.name, part))
        if rng is not None:
            out = [out[i] for i in rng.permutation(len(out))]
        return out

    def _model_spec(self, array: str) -> Any:
        if self.model is not None:
            return self.model
        return next(a.model for a in self.arrays if a.name == array)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        batches = self.batches()
        info = get_worker_info()
        if info is not None:
            if self.client is not None:
                raise RuntimeError("Expected num_workers=0 with a client (the cluster decodes in parallel). Got a "
                                   "DataLoader worker process instead; drop num_workers or the client.")
            batches = batches[info.id::info.num_workers]
        source = self._from_cluster(batches) if self.client is not None else self._local(batches)
        for ids, pixels in source:
            yield {"image": self._tensor(pixels), "id": list(ids)}

    def _tensor(self, pixels: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).contiguous()
        return t.float().div_(255) if self.dtype == "float32" else t

    def _local(self, batches: list[tuple[str, tuple[str, ...]]]) -> Iterator[tuple[tuple[str, ...], np.ndarray]]:
        with ThreadPoolExecutor(1, thread_name_prefix="dataset-read") as reader:
            reads = deque(reader.submit(self.store.get, list(ids)) for _, ids in batches[:self.prefetch])
            for n, (array, ids) in enumerate(batches):
                latents = reads.popleft().result()
                if n + self.prefetch < len(batches):
                    reads.append(reader.submit(self.store.get, list(batches[n + self.prefetch][1])))
                yield ids, decode_checked(self._decoder(array), latents, self.batch_size)

    def _decoder(self, array: str) -> Any:
        spec = self._model_spec(array)
        if not isinstance(spec, str):
            return spec
        if spec not in self._models:
            from latentzarr.models import load_model

            self._models[spec] = load_model(spec)
        return self._models[spec]

    def _from_cluster(self, batches: list[tuple[str, tuple[str, ...]]]
                      ) -> Iterator[tuple[tuple[str, ...], np.ndarray]]:
        token = uuid.uuid4().hex[:12]
        pending: deque = deque()

        def submit(n: int) -> None:
            array, ids = batches[n]
            pending.append((ids, self.client.submit(
                decode_ids_task, self.store.url, self.storage_options, ids, self._model_spec(array),
                self.batch_size, key=f"latentzarr-dataset-{token}-{n}", pure=False)))

        try:
            for n in range(min(self.prefetch, len(batches))):
                submit(n)
            for n in range(len(batches)):
                ids, fut = pending.popleft()
                if n + self.prefetch < len(batches):
                    submit(n + self.prefetch)
                yield ids, fut.result()
        finally:
            self.client.cancel([f for _, f in pending])
