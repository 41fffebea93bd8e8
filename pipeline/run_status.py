"""The outcome of one ``msmt run``: the top-level ``status`` of ``run_summary.json`` and the exit code.

A scheduler (cron, Airflow, an alerting rule) should not have to read component states to know what happened.
Each run ends in exactly one of these statuses, each with its own exit code:

==========================  ====  =====================================================================
status                      exit  meaning
==========================  ====  =====================================================================
``succeeded``                0    every component finished and the model was blessed (and pushed, or
                                  it is the version already served)
``failed``                   1    a bad configuration, or a component failed or crashed; see ``error``
``blocked_by_validation``    3    the input was refused before Transform: too many bad rows (ExampleGen)
                                  or anomalies against the last accepted span (ExampleValidator);
                                  nothing was trained or pushed
``not_blessed``              4    every component finished but the Evaluator did not bless the model:
                                  nothing was pushed, the served version is unchanged
==========================  ====  =====================================================================

Exit code 2 is argparse's usage error (an unknown option), before anything runs.
"""

from __future__ import annotations

import enum


class RunStatus(enum.Enum):
    SUCCEEDED = ("succeeded", 0)
    FAILED = ("failed", 1)
    BLOCKED_BY_VALIDATION = ("blocked_by_validation", 3)
    NOT_BLESSED = ("not_blessed", 4)

    def __init__(self, label: str, exit_code: int):
        self.label = label
        self.exit_code = exit_code


USAGE_ERROR_EXIT_CODE = 2  # argparse


def exit_codes_help() -> str:
    """The exit codes, one line each, for ``msmt run --help``."""
    return "exit codes: " + ", ".join(f"{s.exit_code} {s.label}" for s in RunStatus) + \
        f", {USAGE_ERROR_EXIT_CODE} usage error (run_summary.json 'status' says the same)"


# A component that never started in a run (downstream of a refusal or a failure) is listed with this state, so
# that the summary lists every component of the pipeline.
NOT_RUN = "NOT_RUN"
