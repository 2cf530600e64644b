"""The eraser's use cases, each written once; the handlers, the app's sweeper, `lethe
cleanup` and the tests call them here.

- plan.py: plan an erasure (ErasureRequested), give up on one after retries
- chunks.py: erase one chunk, or record it failed after retries
- waves.py: publish a wave, move the job on, finish the soft delete
- lifecycle.py: cancel, restore (whole job or items)
- purge.py: purge a job, the purge sweep and the recovery-window notices
- verify.py: verification of what is left
- retention.py, cleaning.py: retention jobs and the run itself
"""

from services.eraser.service.chunks import chunk_failed, process_chunk
from services.eraser.service.lifecycle import cancel, restore
from services.eraser.service.plan import give_up, plan
from services.eraser.service.purge import PurgeIncomplete, purge, recovery_notices, sweep
from services.eraser.service.verify import verify
from services.eraser.service.waves import advance

__all__ = [
    "PurgeIncomplete",
    "advance",
    "cancel",
    "chunk_failed",
    "give_up",
    "plan",
    "process_chunk",
    "purge",
    "recovery_notices",
    "restore",
    "sweep",
    "verify",
]
