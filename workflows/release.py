"""The release workflow: several components deployed in dependency order, undone together.

Waves come from the dependency graph read once at the start (recorded in the status); each
wave's components deploy in parallel as child deployment workflows under the id the API uses
(`deploy:<component>:<environment>`), so the per-target lock still applies. A failure anywhere
(a child that did not succeed, a child start refused, an abort, a cancellation) stops the wave's
running children and rolls back every component the release moved, in reverse wave order
(parallel within a wave), each by its fast rollback path. At most 50 components: the history
stays small, so no continue-as-new.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ApplicationError,
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from core import dependency_graph
    from core.contracts import DEPLOYMENT_WORKFLOW, STATUS_QUERY
    from core.ids import deployment_workflow_id
    from core.models.deployments import (
        ActionRequest,
        DeploymentInput,
        DeploymentState,
        DeploymentStatus,
    )
    from core.models.releases import (
        AWAIT_DEPLOYMENT_ACTIVITY,
        FINAL_RELEASE_STATES,
        FORGET_DEPLOYMENT_ACTIVITY,
        PREPARE_DEPLOYMENT_ACTIVITY,
        READ_GRAPH_ACTIVITY,
        RECORD_RELEASE_ACTIVITY,
        RELEASE_WORKFLOW,
        START_ROLLBACK_ACTIVITY,
        AwaitAnswer,
        AwaitRequest,
        ComponentProgress,
        ForgetRequest,
        GraphAnswer,
        GraphRequest,
        PrepareAnswer,
        PrepareRequest,
        ReleaseInput,
        ReleaseState,
        ReleaseStatus,
        RollbackStarted,
        RollbackStartRequest,
    )

# Short: an attempt lost with a killed worker is retried after this long.
_SHORT = timedelta(seconds=10)
_AWAIT = timedelta(hours=24)
_HEARTBEAT = timedelta(seconds=30)
_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10))
_UNDONE_BY_ITSELF = {DeploymentState.ROLLED_BACK, DeploymentState.ABORTED, DeploymentState.FAILED}


def release_deployment_id(release_id: str, component: str) -> str:
    """The release's deployment of a component: the same on every attempt and replay."""
    digest = hashlib.sha256(f"{release_id}:{component}".encode()).hexdigest()[:20]
    return f"dep-rel-{digest}"


class _Failure(Exception):
    def __init__(self, component: str | None, reason: str) -> None:
        super().__init__(reason)
        self.component = component
        self.reason = reason


@workflow.defn(name=RELEASE_WORKFLOW)
class ReleaseWorkflow:
    @workflow.init
    def __init__(self, inp: ReleaseInput) -> None:
        self.inp = inp
        self.status = ReleaseStatus(release_id=inp.release_id, environment=inp.environment)
        self.abort_reason: str | None = None
        self.children: dict[str, workflow.ChildWorkflowHandle[object, DeploymentStatus]] = {}
        self.tasks: list[asyncio.Task[_Failure | None]] = []
        self._stopping = False

    @workflow.run
    async def run(self, inp: ReleaseInput) -> ReleaseStatus:  # noqa: ARG002 (kept in __init__)
        s = self.status
        s.started_at = workflow.now()
        s.state = ReleaseState.PROGRESSING
        try:
            await self._plan()
            await self._record()
            for number, wave in enumerate(s.waves):
                if self.abort_reason is not None:
                    raise _Failure(None, self.abort_reason)
                await self._wave(number, wave)
        except _Failure as failure:
            await self._undo(failure.component, failure.reason)
        except BaseException as err:
            if not is_cancelled_exception(err):
                raise
            reason = workflow.cancellation_reason() or "the release was cancelled"
            await asyncio.shield(asyncio.create_task(self._stop_children(reason)))
            await asyncio.shield(asyncio.create_task(self._undo(None, reason)))
            await asyncio.shield(asyncio.create_task(self._record()))
            raise
        else:
            self._end(ReleaseState.SUCCEEDED, "every component is deployed")
        await self._record()
        return s

    async def _record(self) -> None:
        await workflow.execute_activity(
            RECORD_RELEASE_ACTIVITY,
            self.status,
            start_to_close_timeout=_SHORT,
            retry_policy=_RETRY,
        )

    # ------------------------------------------------------------------ plan and waves

    async def _plan(self) -> None:
        s, inp = self.status, self.inp
        answer = await workflow.execute_activity(
            READ_GRAPH_ACTIVITY,
            GraphRequest(components=sorted(inp.components)),
            result_type=GraphAnswer,
            start_to_close_timeout=_SHORT,
            retry_policy=_RETRY,
        )
        s.graph = {name: answer.graph.get(name, []) for name in sorted(inp.components)}
        if answer.unknown:
            raise _Failure(None, f"no component {', '.join(answer.unknown)}")
        try:
            s.waves = dependency_graph.waves(answer.graph, inp.components)
        except ValueError as err:
            raise _Failure(None, str(err)) from None
        for number, wave in enumerate(s.waves):
            for name in wave:
                s.components[name] = ComponentProgress(
                    component=name, version=inp.components[name], wave=number
                )

    async def _wave(self, number: int, wave: list[str]) -> None:
        """Deploy a wave's components in parallel; on the first failure (or an abort), stop
        the others and raise."""
        tasks = {name: asyncio.create_task(self._deploy_or_fail(name)) for name in wave}
        self.tasks = list(tasks.values())
        failure: _Failure | None = None
        while failure is None and not all(t.done() for t in tasks.values()):
            await workflow.wait_condition(
                lambda: (
                    self.abort_reason is not None
                    or any(t.done() and t.result() is not None for t in tasks.values())
                    or all(t.done() for t in tasks.values())
                )
            )
            failure = next(
                (r for t in tasks.values() if t.done() and (r := t.result()) is not None), None
            )
            if failure is None and self.abort_reason is not None:
                failure = _Failure(None, self.abort_reason)
        if failure is None:
            failure = next((r for t in tasks.values() if (r := t.result()) is not None), None)
        if failure is not None:
            await self._stop_children(failure.reason)
            raise failure
        workflow.logger.info("release %s: wave %d done", self.inp.release_id, number)

    async def _deploy_or_fail(self, name: str) -> _Failure | None:
        try:
            return await self._deploy(name)
        except GeneratorExit:  # evicted from the worker's cache: not an ending
            raise
        except BaseException as err:
            if is_cancelled_exception(err):
                raise
            # A bug or an activity's final error: the release fails over it, and undoes.
            return self._ended(name, DeploymentState.FAILED, f"{type(err).__name__}: {err}")

    async def _deploy(self, name: str) -> _Failure | None:
        inp, p = self.inp, self.status.components[name]
        p.deployment_id = release_deployment_id(inp.release_id, name)
        p.started_at = workflow.now()
        p.state = DeploymentState.PENDING
        prepared = await workflow.execute_activity(
            PREPARE_DEPLOYMENT_ACTIVITY,
            PrepareRequest(
                release_id=inp.release_id,
                environment=inp.environment,
                component=name,
                version=inp.components[name],
                strategy=inp.strategies.get(name, inp.strategy),
                deployment_id=p.deployment_id,
            ),
            result_type=PrepareAnswer,
            start_to_close_timeout=_SHORT,
            retry_policy=_RETRY,
        )
        if prepared.refused is not None or prepared.input is None:
            return self._ended(name, DeploymentState.FAILED, prepared.refused or "not prepared")
        child_input = DeploymentInput.model_validate(prepared.input)
        if self.abort_reason is not None or self._stopping:
            await self._forget(p.deployment_id, "the release was stopping")
            return self._ended(name, None, f"not started: {self.abort_reason}")
        try:
            handle = await workflow.start_child_workflow(
                DEPLOYMENT_WORKFLOW,
                child_input,
                id=deployment_workflow_id(name, inp.environment),
                result_type=DeploymentStatus,
                parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
                static_summary=f"{name} {child_input.version} (release {inp.release_id})",
            )
        except WorkflowAlreadyStartedError:
            await self._forget(p.deployment_id, "the target is being deployed already")
            return self._ended(
                name,
                DeploymentState.FAILED,
                f"{name} is already being deployed to {inp.environment}: the release could "
                "not start its deployment",
            )
        self.children[name] = handle
        p.state = DeploymentState.PROGRESSING
        try:
            result = await handle
        except ChildWorkflowError as err:
            if is_cancelled_exception(err):
                return self._ended(name, DeploymentState.ABORTED, "aborted by the release")
            cause = err.cause.message if isinstance(err.cause, ApplicationError) else str(err)
            return self._ended(name, DeploymentState.FAILED, cause)
        except asyncio.CancelledError:
            if self.abort_reason is None and not self._stopping:
                raise
            return self._ended(name, DeploymentState.ABORTED, "aborted by the release")
        finally:
            self.children.pop(name, None)
        if result.state is DeploymentState.SUCCEEDED:
            p.previous_version = result.previous_version
            self._ended(name, DeploymentState.SUCCEEDED, result.reason)
            return None
        return self._ended(name, result.state, result.reason or result.state.value)

    def _ended(self, name: str, state: DeploymentState | None, reason: str | None) -> _Failure:
        p = self.status.components[name]
        p.state, p.reason, p.finished_at = state, reason, workflow.now()
        return _Failure(name, f"{name}: {reason}")

    async def _forget(self, deployment_id: str, reason: str) -> None:
        await workflow.execute_activity(
            FORGET_DEPLOYMENT_ACTIVITY,
            ForgetRequest(deployment_id=deployment_id, reason=reason),
            start_to_close_timeout=_SHORT,
            retry_policy=_RETRY,
        )

    async def _stop_children(self, reason: str) -> None:
        """Abort the deployments still running (each undoes itself: cancellation of a
        deployment is its abort with compensation), and wait until they have."""
        self._stopping = True
        running = list(self.children.values())
        for handle in running:
            handle.cancel()
        await asyncio.gather(*running, *self.tasks, return_exceptions=True)
        workflow.logger.info(
            "release %s: stopped %d children (%s)", self.inp.release_id, len(running), reason
        )

    # ------------------------------------------------------------------ compensation

    async def _undo(self, component: str | None, reason: str) -> None:
        s = self.status
        s.state = ReleaseState.ROLLING_BACK
        s.reason, s.failed_component = reason, component
        problems: list[str] = []
        for wave in reversed(s.waves):
            done = [n for n in wave if s.components[n].state is DeploymentState.SUCCEEDED]
            # No earlier version: a first deployment (nothing to go back to), or the version
            # already served (nothing changed; a rollback would go to an older one).
            for n in done:
                if s.components[n].previous_version is None:
                    s.components[n].rollback_reason = "nothing to undo: no earlier version ran"
            moved = [n for n in done if s.components[n].previous_version is not None]
            results = await asyncio.gather(*(self._roll_back(n) for n in moved))
            problems += [r for r in results if r is not None]
        if problems:
            self._end(ReleaseState.FAILED, f"{reason}; rollback failed: {'; '.join(problems)}")
        else:
            self._end(ReleaseState.ROLLED_BACK, reason)

    async def _roll_back(self, name: str) -> str | None:
        p = self.status.components[name]
        assert p.deployment_id is not None
        p.rollback_started_at = workflow.now()
        started = await workflow.execute_activity(
            START_ROLLBACK_ACTIVITY,
            RollbackStartRequest(release_id=self.inp.release_id, deployment_id=p.deployment_id),
            result_type=RollbackStarted,
            start_to_close_timeout=_SHORT,
            retry_policy=_RETRY,
        )
        p.rollback_deployment_id = started.deployment_id
        if started.refused is not None or started.workflow_id is None or started.run_id is None:
            p.rollback_reason = started.refused or "no rollback started"
            p.rollback_state = DeploymentState.FAILED
            p.rollback_finished_at = workflow.now()
            return f"{name}: {p.rollback_reason}"
        ended = await workflow.execute_activity(
            AWAIT_DEPLOYMENT_ACTIVITY,
            AwaitRequest(workflow_id=started.workflow_id, run_id=started.run_id),
            result_type=AwaitAnswer,
            start_to_close_timeout=_AWAIT,
            heartbeat_timeout=_HEARTBEAT,
            retry_policy=_RETRY,
        )
        p.rollback_state, p.rollback_reason = ended.state, ended.reason
        p.rollback_finished_at = workflow.now()
        if ended.state is not DeploymentState.SUCCEEDED:
            return f"{name}: rollback {ended.state.value}"
        return None

    def _end(self, state: ReleaseState, reason: str) -> None:
        s = self.status
        s.state = state
        if state is not ReleaseState.SUCCEEDED or s.reason is None:
            s.reason = reason
        s.finished_at = workflow.now()

    # ------------------------------------------------------------------ query, abort

    @workflow.query(name=STATUS_QUERY)
    def get_status(self) -> ReleaseStatus:
        return self.status

    @workflow.update(name="abort")
    def abort(self, req: ActionRequest) -> ReleaseStatus:
        self._abort(req)
        return self.status

    def _abort(self, req: ActionRequest) -> None:
        self.abort_reason = f"aborted by {req.by or 'an operator'}" + (
            f": {req.reason}" if req.reason else ""
        )

    @abort.validator
    def _can_abort(self, req: ActionRequest) -> None:  # noqa: ARG002
        if self.status.state in FINAL_RELEASE_STATES or self.abort_reason is not None:
            raise ValueError(f"the release is {self.status.state.value}; nothing to abort")

    @workflow.signal(name="abort")
    def abort_signal(self, req: ActionRequest | None = None) -> None:
        # A signal (the Temporal UI's "Send signal") has no sender the workflow can check:
        # R2C_UI_ACTIONS says whether it is honoured, as for a deployment's (abort is among
        # the safe actions, so only `none` refuses it). The API's abort is an update.
        if self.inp.ui_actions == "none":
            note = "signal abort ignored: R2C_UI_ACTIONS=none does not honour it from the UI"
            self.status.notices = [*self.status.notices, note][-10:]
            workflow.logger.warning(note)
            return
        if self.abort_reason is None and self.status.state not in FINAL_RELEASE_STATES:
            self._abort(req or ActionRequest())
