"""Start moto's server with one fix to its Kinesis model: O(1) sequence numbers.

moto finds a shard's last sequence number with ``list(self.records.keys())[-1]``, which makes
every PutRecords cost grow with the stream's length (a 50,000-record test slows to a crawl).
The replacement returns the same number in constant time; nothing else changes.
"""

from __future__ import annotations

import sys


def _last_sequence_number(shard: object) -> int:
    records = shard.records  # type: ignore[attr-defined]
    return next(reversed(records)) if records else 0


def main() -> None:
    from moto.kinesis.models import Shard
    from moto.server import main as moto_main

    Shard.get_max_sequence_number = _last_sequence_number  # type: ignore[method-assign]
    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
