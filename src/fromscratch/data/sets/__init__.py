"""The registry of data sets: one module per data set, each defining `DATASET`."""

from fromscratch.data.base import DataSet
from fromscratch.data.sets import (
    demo,
    enwik8,
    imdb,
    pang_lee_reviews,
    pang_lee_sentences,
    shakespeare,
)

DATASETS: dict[str, DataSet] = {
    module.DATASET.name: module.DATASET
    for module in (imdb, enwik8, shakespeare, pang_lee_reviews, pang_lee_sentences, demo)
}
