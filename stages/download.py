"""Stage `download@<task>`: fetch the task's pinned, hash-checked dataset into data/<task>/raw."""

from pipeline.data.prepare import download
from stages import run_task_stage

if __name__ == "__main__":
    run_task_stage(lambda params, layout: download(params.data, layout))
