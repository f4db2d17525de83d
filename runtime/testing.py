"""Kiln's one testing seam on the Blender side: what tests may switch, all off for users.

    from <add-on>.runtime.testing import TESTING
    TESTING.force_timer = True       # the timer path even in background Blender
    TESTING.step_delay = 0.1         # the engine sleeps 0.1 s per sample / refine step
    ...
    TESTING.reset()

The session reads it in two places only (session.synchronous, Session.ensure_client);
the step delay reaches the engine as its one testing argument (engine/server.py,
ENGINE_STEP_DELAY below), so a cancel lands mid-job.
"""

from __future__ import annotations

from dataclasses import dataclass

ENGINE_STEP_DELAY = "--test-step-delay"      # engine/server.py's testing argument


@dataclass
class Testing:
    force_timer: bool = False     # interactive code path (timer ticks) in background Blender
    step_delay: float = 0.0       # s the engine sleeps in each sampling / refine step

    def engine_args(self) -> list[str]:
        """Extra `engine serve` arguments for the engine a test starts."""
        return [ENGINE_STEP_DELAY, str(self.step_delay)] if self.step_delay else []

    def reset(self) -> None:
        self.force_timer, self.step_delay = False, 0.0


TESTING = Testing()
