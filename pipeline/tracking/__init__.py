"""Tracking: every MLflow call of rnnbench goes through this package (the store, its guard and
the UI server in `store`, the runs in `runs`); callers use `tracking.<name>`."""

from pipeline.tracking.models import (
    CHALLENGER,
    CHAMPION,
    download_model_folder,
    frame,
    inner_folder,
    load_pyfunc,
    log_model,
    model_uri,
    register_version,
    registered_name,
    set_alias,
    tag_version,
    version_by_alias,
)
from pipeline.tracking.runs import (
    COMPARISON_TAG,
    PARENT_TAG,
    TAG,
    comparison_rows,
    end_run,
    ensure_run,
    git_info,
    log_files,
    log_metrics,
    set_tags,
    start_cell_run,
    start_trial_run,
)
from pipeline.tracking.store import (
    client_for,
    compare_url,
    experiment_id,
    find_experiment,
    project_root,
    require_server,
    serve_ui,
    shown_uri,
    store_errors,
    tracking_uri,
)

__all__ = [
    "CHALLENGER", "CHAMPION", "COMPARISON_TAG", "PARENT_TAG", "TAG", "client_for", "compare_url",
    "comparison_rows", "download_model_folder", "end_run", "ensure_run", "experiment_id",
    "find_experiment", "frame", "git_info", "inner_folder", "load_pyfunc", "log_files",
    "log_metrics", "log_model", "model_uri", "project_root", "register_version", "registered_name",
    "require_server", "serve_ui", "set_alias", "set_tags", "shown_uri", "start_cell_run",
    "start_trial_run", "store_errors", "tag_version", "tracking_uri", "version_by_alias",
]
