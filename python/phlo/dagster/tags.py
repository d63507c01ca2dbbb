"""The run tags phlo records on a Dagster run, so that promotion and cleanup (sensors that run
in another process, later) find the run's lakehouse, target and branch."""

__all__ = [
    "BRANCH",
    "LAKEHOUSE",
    "MAX_RUNTIME",
    "PROJECT",
    "PROMOTION",
    "PROMOTION_COMMIT",
    "PUBLICATION",
    "TARGET",
]

#: The lakehouse folder the run wrote to.
LAKEHOUSE = "phlo/lakehouse"
#: The project whose settings name the run's catalog and warehouse (absent: the folder is
#: the lakehouse).
PROJECT = "phlo/project"
#: The ref the run publishes into.
TARGET = "phlo/target"
#: The run's WAP branch (absent when WAP is off: the run wrote to the target).
BRANCH = "phlo/branch"
#: What promotion did: ``published``, ``blocked``, ``conflict`` (or ``no_branch``).
PROMOTION = "phlo/promotion"
#: The log commit of the merge that published the run.
PROMOTION_COMMIT = "phlo/promotion_commit"
#: Publishing the run's marts to PostgreSQL after its merge (runs with publishing assets):
#: ``pending`` (promotion under way, or it crashed), ``published``, ``failed`` (retried by
#: the ``publication_retry_sensor``), ``withheld`` (the merge conflicted: nothing published).
PUBLICATION = "phlo/publication"
#: Dagster's run tag for the run monitoring daemon (phlo enforces the timeout itself too).
MAX_RUNTIME = "dagster/max_runtime"
