"""Fault injection for the harness's subprocesses: on the path (PYTHONPATH) only when the harness asks for it.

``TRIPLETCLIP_FAULT_DISK="EDGE:AFTER:MATCH"`` makes a write fail with ``ENOSPC`` as a full disk would: the
``AFTER``-th call (1-based, counted in each process) of ``EDGE`` whose target path contains ``MATCH``. Edges:
``torch.save`` (checkpoint state), ``safetensors`` (weights), ``parquet`` (a parquet shard: `pyarrow.parquet.ParquetWriter.write_table`),
``replace`` (`os.replace`, the commit of an atomic write), ``copy`` (`shutil.copyfile`).

``TRIPLETCLIP_FAULT_SLOW="parquet:SECONDS"`` makes every parquet shard write take ``SECONDS`` longer, so that a
kill trial lands while a job still has shards to write, however fast the machine.

``TRIPLETCLIP_FAULT_FORBID=1`` makes loading a model, reading a dataset or opening an image fail loudly, for checks
that a command refuses its configuration before doing any of that.
"""

import errno
import os

_DISK = os.environ.get("TRIPLETCLIP_FAULT_DISK")
_FORBID = os.environ.get("TRIPLETCLIP_FAULT_FORBID")
_SLOW = os.environ.get("TRIPLETCLIP_FAULT_SLOW")


def _full_disk(path):
    return OSError(errno.ENOSPC, "No space left on device", str(path))


def _install_disk_fault(spec):
    edge, after, match = spec.split(":", 2)
    after = int(after)
    calls = [0]

    def hit(path) -> bool:
        if match and match not in str(path):
            return False
        calls[0] += 1
        return calls[0] == after

    if edge == "torch.save":
        import torch

        original = torch.save

        def save(obj, f, *args, **kwargs):
            if hit(f):
                raise _full_disk(f)
            return original(obj, f, *args, **kwargs)

        torch.save = save
    elif edge == "parquet":
        import pyarrow.parquet as pq

        original = pq.ParquetWriter.write_table

        def write_table(self, table, *args, **kwargs):
            target = getattr(self, "where", "")
            if hit(target):
                raise _full_disk(target)
            return original(self, table, *args, **kwargs)

        pq.ParquetWriter.write_table = write_table
    elif edge == "replace":
        original = os.replace

        def replace(src, dst, *args, **kwargs):
            if hit(dst):
                raise _full_disk(dst)
            return original(src, dst, *args, **kwargs)

        os.replace = replace
    elif edge == "safetensors":
        import safetensors.torch

        original = safetensors.torch.save_file

        def save_file(tensors, filename, *args, **kwargs):
            if hit(filename):
                raise _full_disk(filename)
            return original(tensors, filename, *args, **kwargs)

        safetensors.torch.save_file = save_file
    elif edge == "copy":
        import shutil

        original = shutil.copyfile

        def copyfile(src, dst, *args, **kwargs):
            if hit(dst):
                raise _full_disk(dst)
            return original(src, dst, *args, **kwargs)

        shutil.copyfile = copyfile
    else:
        raise ValueError(f"unknown fault edge {edge!r}")


def _install_slow_writes(spec):
    import time

    import pyarrow.parquet as pq

    edge, seconds = spec.split(":", 1)
    if edge != "parquet":
        raise ValueError(f"unknown slow edge {edge!r}")
    original = pq.ParquetWriter.write_table

    def write_table(self, table, *args, **kwargs):
        time.sleep(float(seconds))
        return original(self, table, *args, **kwargs)

    pq.ParquetWriter.write_table = write_table


def _install_forbid():
    import datasets
    import transformers
    from PIL import Image

    def forbidden(what):
        def refuse(*args, **kwargs):
            raise RuntimeError(f"FORBIDDEN: {what} before the configuration was checked")
        return refuse

    transformers.PreTrainedModel.from_pretrained = classmethod(lambda cls, *a, **k: forbidden("a model load")())
    datasets.load_dataset = forbidden("a dataset read")
    datasets.load_from_disk = forbidden("a dataset read")
    Image.open = forbidden("an image read")


if _DISK:
    _install_disk_fault(_DISK)
if _SLOW:
    _install_slow_writes(_SLOW)
if _FORBID:
    _install_forbid()
