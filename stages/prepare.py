"""Stage `prepare`: split, tokenize, build the vocabulary, encode to tensors in data/prepared."""

from pipeline.config import load_params
from pipeline.errors import run_guarded
from pipeline.paths import Layout
from pipeline.prepare import prepare


def main() -> None:
    params = load_params()
    prepare(params.data, params.prepare, Layout())


if __name__ == "__main__":
    run_guarded(main)
