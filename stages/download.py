"""Stage `download`: fetch the dataset's pinned, hash-checked source into data/raw."""

from pipeline.prepare import download
from stages import run_stage

if __name__ == "__main__":
    run_stage(lambda params, layout: download(params.data, layout))
