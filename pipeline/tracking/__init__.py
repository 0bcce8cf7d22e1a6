"""Tracking: every MLflow call of rnnbench goes through this package (where the store is in
`location`, the store and its guard in `store`, the runs in `runs`, models and the registry in
`models`, the team's server and the UI in `server`); callers use `tracking.<name>`.

Names load on first use, so a command that needs only `location` (a port, a URI) does not
import MLflow (1.7 s) first.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # never run; what readers of the imports see (tests/test_dvc_deps.py)
    from pipeline.tracking import location, models, runs, server, store  # noqa: F401

_HOME = {
    "location": ("check_database", "is_database", "port_in_use", "project_root", "shown_uri",
                 "tracking_uri"),
    "models": ("CHALLENGER", "CHAMPION", "download_model_folder", "frame", "inner_folder",
               "log_model", "model_uri", "register_version", "registered_name",
               "set_alias", "tag_version", "version_by_alias", "version_of_run"),
    "runs": ("COMPARISON_TAG", "PARENT_TAG", "TAG", "comparison_rows", "end_run", "ensure_run",
             "git_info", "log_files", "log_metrics", "set_tags", "start_cell_run",
             "start_trial_run"),
    "server": ("serve_model", "serve_ui"),
    "store": ("client_for", "compare_url", "experiment_id", "experiment_url", "find_experiment",
              "require_server", "runs_in_store", "store_errors"),
}
_MODULE_OF = {name: module for module, names in _HOME.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
