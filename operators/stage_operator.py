"""Base class of the spinevcf operators: stage timing and expected-error handling."""

from __future__ import annotations

from typing import Any, ClassVar

from monai.deploy.core import ExecutionContext, Fragment, InputContext, Operator, OutputContext

from operators.run_state import RunState
from spinevcf.errors import SpineVCFError

__all__ = ["StageOperator"]


class StageOperator(Operator):
    """An operator that runs one pipeline stage, timed, with expected errors trapped.

    Subclasses declare their ports in ``setup()`` and implement :meth:`process`,
    which receives, calls the algorithm in :mod:`spinevcf` and emits. When
    :meth:`process` raises a :class:`~spinevcf.errors.SpineVCFError` the error is
    recorded in the shared :class:`~operators.run_state.RunState` and nothing is
    emitted, so downstream stages do not run and no output is written.

    Args:
        fragment: the application (or fragment) this operator belongs to.
        state: the run state shared by all operators of the application.
    """

    #: Stage name: the key of this stage in ``results.json`` ``timings_s``.
    stage_name: ClassVar[str] = "stage"

    def __init__(self, fragment: Fragment, *args: Any, state: RunState, **kwargs: Any) -> None:
        if not isinstance(state, RunState):
            raise TypeError(f"state must be a RunState, got {type(state).__name__}")
        self.state = state
        super().__init__(fragment, *args, **kwargs)

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        """Run :meth:`process` timed as :attr:`stage_name`; trap expected errors."""
        try:
            with self.state.stage(self.stage_name):
                self.process(op_input, op_output)
        except SpineVCFError as exc:
            self.state.fail(self.stage_name, exc)

    def process(self, op_input: InputContext, op_output: OutputContext) -> None:
        """Receive, run the stage, emit. Implemented by subclasses."""
        raise NotImplementedError
