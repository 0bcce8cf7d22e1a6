"""Stage `prepare@<task>`: split, tokenize, build vocabularies, encode to data/<task>/prepared."""

from pipeline.data.prepare import prepare
from stages import run_task_stage

if __name__ == "__main__":
    run_task_stage(lambda params, layout: prepare(params.data, params.prepare, layout))
