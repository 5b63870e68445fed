"""Review claims: an item a reviewer has open is theirs for a while, so two people do not work on one answer.

Opening an item claims it for ``seconds`` (renewed while the page is open, released on skip, answer or
leave). An item takes claims only while its answers plus the others' live claims stay below the answers it
needs (the overlap policy's ``k``), so at most ``k`` people hold it; the queue leaves out items whose
remaining answers are all held by others. Claims are written under the store's write transaction, so two
reviewers asking at once never both get the last slot.
"""

from __future__ import annotations

import time

from ._base import StoreBase


class ClaimStore(StoreBase):
    """Mixed into :class:`~labelloop.store.Store`; all SQL about who holds which item for review."""

    def claim_review(self, item_id: str, reviewer: str, seconds: float, needed: int) -> bool:
        """Hold ``item_id`` for ``reviewer`` (or renew their hold); False when its remaining answers are held
        by others already."""
        now = time.time()
        with self.transaction() as db:
            db.execute("DELETE FROM review_claims WHERE item_id = ? AND expires_at <= ?", (item_id, now))
            answers = db.execute(
                "SELECT count(*) FROM annotations WHERE item_id = ? AND is_current = 1 AND kind = 'answer'", (item_id,)
            ).fetchone()[0]
            others = db.execute(
                "SELECT count(*) FROM review_claims WHERE item_id = ? AND reviewer != ?", (item_id, reviewer)
            ).fetchone()[0]
            mine = db.execute(
                "SELECT 1 FROM review_claims WHERE item_id = ? AND reviewer = ?", (item_id, reviewer)
            ).fetchone()
            if mine is None and answers + others >= needed:
                return False
            db.execute(
                "INSERT INTO review_claims (item_id, reviewer, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (item_id, reviewer) DO UPDATE SET expires_at = excluded.expires_at",
                (item_id, reviewer, now + seconds),
            )
            return True

    def release_review(self, item_id: str, reviewer: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM review_claims WHERE item_id = ? AND reviewer = ?", (item_id, reviewer))

    def review_holders(self, item_id: str) -> list[str]:
        """Who holds ``item_id`` now."""
        rows = self.db.execute(
            "SELECT reviewer FROM review_claims WHERE item_id = ? AND expires_at > ? ORDER BY reviewer",
            (item_id, time.time()),
        )
        return [row[0] for row in rows]
