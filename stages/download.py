"""Stage `download`: fetch the dataset's pinned, hash-checked source into data/raw."""

from pipeline.config import load_params
from pipeline.errors import run_guarded
from pipeline.paths import Layout
from pipeline.prepare import download


def main() -> None:
    download(load_params().data, Layout())


if __name__ == "__main__":
    run_guarded(main)
