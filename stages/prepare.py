"""Stage `prepare`: split, tokenize, build the vocabulary, encode to tensors in data/prepared."""

from pipeline.prepare import prepare
from stages import run_stage

if __name__ == "__main__":
    run_stage(lambda params, layout: prepare(params.data, params.prepare, layout))
