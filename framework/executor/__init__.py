"""Running a job over many files as work items on a cluster (``executor=dask``).

- :mod:`.planning`: work items (file, entry range) cut at luminosity-block and cluster boundaries;
- :mod:`.workitem`: what a worker runs for one item, and the reports as plain data;
- :mod:`.merge`: the items' output parts merged into one file in input order;
- :mod:`.dask_runner`: the driver: cluster, submission with retries, skipBadFiles, the shared Triton server.
"""

from .dask_runner import EXECUTOR_OPTIONS, EXECUTORS, DaskOptions, ExecutorError, ExecutorSummary, run_dask
from .merge import MergeError, merge_parts
from .planning import DEFAULT_CHUNK_SIZE, BadFile, Plan, WorkItem, plan

__all__ = ["DEFAULT_CHUNK_SIZE", "EXECUTORS", "EXECUTOR_OPTIONS", "BadFile", "DaskOptions", "ExecutorError",
           "ExecutorSummary", "MergeError", "Plan", "WorkItem", "merge_parts", "plan", "run_dask"]
