"""Per-epoch training metrics with DVCLive (the DVC project's logger), written while train runs.

After every epoch DVCLive's Keras callback appends a row to `<folder>/plots/metrics/train/*.tsv`
and `eval/*.tsv` (columns `step`, the epoch, and the value: no wall-clock time, so the files are as
reproducible as the training) and rewrites `<folder>/metrics.json` with the latest values. dvc.yaml
declares that file as a metric and the tsv files as plots, so `dvc exp show`, `dvc plots show`
and DVC's VS Code extension follow a running or queued experiment epoch by epoch. The folder is
a DVC-cached out of the train stage (not in git): a failed run can leave a partial log there,
and `dvc checkout` brings back the last good one.
"""

from __future__ import annotations

import os

from dvclive import Live
from dvclive.keras import DVCLiveCallback


def live_metrics_callback(folder: str | os.PathLike[str]) -> DVCLiveCallback:
    """A Keras callback that logs every epoch's metrics (and the learning rate) to `folder`.

    DVCLive empties `folder` of a previous run's logs when training starts. `dvcyaml=None`
    keeps it from writing its own metrics and plots sections into dvc.yaml (dvc.yaml declares
    them itself); `save_dvc_exp=False` keeps it from making an experiment of its own (under
    `dvc exp run` DVC makes it); no report, no system monitoring.
    """
    live = Live(
        dir=os.fspath(folder),
        dvcyaml=None,
        save_dvc_exp=False,
        report=None,
        monitor_system=False,
    )
    live.step = 1  # DVCLive counts from 0: its step is then the epoch, as in history.csv
    return DVCLiveCallback(live=live)
