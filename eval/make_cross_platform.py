"""Build a cross-platform identity map from the two shared data sets.

Neither data set has people on both platforms, so the test set is constructed: the k-th most active
MovieLens user and the k-th most active Amazon Magazine reviewer are declared the same person,
`person-k`. Pairing by activity rank keeps both halves of each person substantial. Only ids are
written (no data is copied): the map is a CSV with header platform,platform_user_id,person_id.

    python eval/make_cross_platform.py --persons 20 --out /tmp/identity_map.csv
    tasteprint ingest ../shared/data/ml-latest-small --store S
    tasteprint ingest ../shared/data/amazon2018-magazine --store S --identity-map /tmp/identity_map.csv
    tasteprint profile person-1 --store S
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from collections import Counter
from pathlib import Path

from tasteprint.ingest.loader import ingest
from tasteprint.storage.sqlite import Database

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def most_active(path: Path, n: int) -> list[str]:
    with tempfile.TemporaryDirectory() as scratch:
        db = Database(Path(scratch))
        ingest(db, path)
        counts = Counter(e.user_id for e in db.iter_events())
        db.close()
    return [user for user, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def identity_rows(persons: int, movielens: Path, amazon: Path) -> list[tuple[str, str, str]]:
    rows = []
    for k, (ml_user, amazon_user) in enumerate(zip(most_active(movielens, persons), most_active(amazon, persons)), 1):
        rows += [("movielens", ml_user, f"person-{k}"), ("amazon", amazon_user, f"person-{k}")]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=20)
    parser.add_argument("--movielens", type=Path, default=SHARED / "ml-latest-small")
    parser.add_argument("--amazon", type=Path, default=SHARED / "amazon2018-magazine")
    parser.add_argument("--out", type=Path, default=Path("identity_map.csv"))
    args = parser.parse_args()
    with args.out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["platform", "platform_user_id", "person_id"])
        writer.writerows(identity_rows(args.persons, args.movielens, args.amazon))
    print(f"wrote {args.out}: {args.persons} persons linked across movielens and amazon")


if __name__ == "__main__":
    main()
