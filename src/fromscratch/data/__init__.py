"""The data stage: public data sets → verified downloads → token arrays on disk.

`DATASETS` is the registry (one module per data set under `sets/`); `prepare` turns one of
them into a folder of memmap-able token arrays; `PreparedData` reads such a folder.
"""

from fromscratch.data.base import DataSet, Split
from fromscratch.data.prepare import PreparedData, prepare
from fromscratch.data.sets import DATASETS

__all__ = ["DATASETS", "DataSet", "PreparedData", "Split", "prepare"]
