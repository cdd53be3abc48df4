"""The seed's applicant journey as a Celery app, with no servers at all.

* broker: kombu's filesystem transport (messages are files in a folder),
  writing each message atomically (``celery_triggers.testing.filesystem``),
* storage: one SQLite file,
* a real ``celery worker`` process runs the tasks.

    startSession + observationsReceived  ->  t_createApplicant
    t_createApplicant + sessionFinalized ->  t_computeScore
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery import Celery

from celery_triggers import Triggers, trigger_task

DATA = Path(os.environ.get("SURVEY_DATA", Path(__file__).with_name(".data"))).resolve()
BROKER = DATA / "broker"

app = Celery("survey")
app.conf.update(
    broker_url="filesystem://",
    broker_transport="celery_triggers.testing.filesystem:Transport",
    broker_transport_options={
        "data_folder_in": str(BROKER),
        "data_folder_out": str(BROKER),
        "control_folder": str(BROKER / "control"),
        "store_processed": False,
        "polling_interval": 0.02,
    },
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    triggers_storage=f"sqlite:///{DATA / 'triggers.sqlite3'}",
)
Triggers(app)


def ensure_dirs() -> None:
    BROKER.mkdir(parents=True, exist_ok=True)


@trigger_task(after=["startSession", "observationsReceived"], name="t_createApplicant")
@app.task(name="survey.create_applicant")
def create_applicant(trigger_kwargs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Create the applicant record from the session and its observations."""
    session = trigger_kwargs["startSession"]
    observations = trigger_kwargs["observationsReceived"]
    return {"applicant_id": f"A-{session['survey']}", "observations": len(observations["answers"])}


@trigger_task(after=["t_createApplicant", "sessionFinalized"], name="t_computeScore")
@app.task(name="survey.compute_score")
def compute_score(trigger_kwargs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Score the applicant once it exists and the session is final."""
    applicant = trigger_kwargs["t_createApplicant"]
    return {"applicant_id": applicant["applicant_id"], "score": 10 * applicant["observations"]}
