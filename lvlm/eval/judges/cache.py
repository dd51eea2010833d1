"""An append-only JSONL cache of judgments: a re-run costs no request and gives identical numbers.

The file is also the record of what the judge said: one line per (judge model, prompt, question, answer,
prediction) with the raw reply. The key leaves out the base URL, so the same model served elsewhere reuses it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

from lvlm.eval.judges.base import JudgeItem, Judgment

CACHE_FILE = "judgments.jsonl"


def judgment_key(identity: str, item: JudgeItem) -> str:
    """SHA-256 of the judge identity and the three texts."""
    payload = json.dumps([identity, item.question, item.answer, item.prediction], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class JudgmentCache:
    """Judgments stored in ``<directory>/judgments.jsonl``; safe to share between threads of one process.

    Args:
        directory: folder of the cache file (created when missing).
    """

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / CACHE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._entries: dict[str, Judgment] = {}
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        with self.path.open(encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    self._entries[row["key"]] = Judgment(row["pred"], int(row["score"]), row.get("raw", ""), True)
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    # A line cut short by a killed run: skip it, the item is simply judged again.
                    continue

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, identity: str, item: JudgeItem) -> Judgment | None:
        """The stored judgment (marked ``cached``), or None."""
        return self._entries.get(judgment_key(identity, item))

    def put(self, identity: str, item: JudgeItem, judgment: Judgment) -> None:
        """Store a judgment in memory and append it to the file."""
        key = judgment_key(identity, item)
        row = {
            "key": key,
            "judge": identity,
            "question": item.question,
            "answer": item.answer,
            "prediction": item.prediction,
            "pred": judgment.pred,
            "score": judgment.score,
            "raw": judgment.raw,
        }
        with self._lock:
            self._entries[key] = Judgment(judgment.pred, judgment.score, judgment.raw, True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
