"""`deployment-background-analysis`: a canary's background analysis, as a child workflow.

A background analysis measures for as long as the rollout lasts; a canary paused for promotion
may wait for days. Inside the deployment's own history every measurement would cost about
eleven events, and Temporal terminates a workflow at 51,200 (with no compensation). So it runs
here, continuing as new every `MEASUREMENTS_PER_RUN` measurements (or when Temporal suggests
it), carrying where each metric stands; the deployment's history holds only the child's start
and end.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from core.contracts import STATUS_QUERY
    from core.models.analysis import (
        STATUS_MEASUREMENTS,
        AnalysisResult,
        BackgroundAnalysisInput,
        Measurement,
    )
    from workflows.deployment.analysis import AnalysisRun, Target, run_analysis

BACKGROUND_ANALYSIS_WORKFLOW = "deployment-background-analysis"
MEASUREMENTS_PER_RUN = 200


@workflow.defn(name=BACKGROUND_ANALYSIS_WORKFLOW)
class BackgroundAnalysisWorkflow:
    """Runs one analysis until a deciding metric fails or the parent cancels it."""

    def __init__(self) -> None:
        self.measured = 0
        self.recent: list[Measurement] = []

    @workflow.run
    async def run(self, inp: BackgroundAnalysisInput) -> AnalysisResult:
        run = AnalysisRun(
            target=Target(inp.component, inp.environment, inp.version),
            where=inp.where,
            record=self._record,
            stop_requested=self._time_to_continue,
            until_cancelled=frozenset(inp.until_cancelled),
            interruptible=True,
            judging=inp.judging,
        )
        result = await run_analysis(inp.spec, run, inp.progress)
        if result is None:  # stopped to continue as new, with where each metric stands
            workflow.continue_as_new(inp.model_copy(update={"runs": inp.runs + 1}))
        return result

    def _record(self, m: Measurement) -> None:
        self.measured += 1
        self.recent = [*self.recent, m][-STATUS_MEASUREMENTS:]
        workflow.set_current_details(f"run {workflow.info().run_id[:8]}: {m.message}")

    def _time_to_continue(self) -> bool:
        return (
            self.measured >= MEASUREMENTS_PER_RUN or workflow.info().is_continue_as_new_suggested()
        )

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> list[Measurement]:
        """The newest measurements of this run."""
        return self.recent
