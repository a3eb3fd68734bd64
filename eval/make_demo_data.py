"""Regenerate the small built-in sample that `tasteprint demo` uses when ../shared/data is absent.

Twelve readers with distinct tastes over a 36-book catalogue; deterministic (seeded).

    .venv/bin/python eval/make_demo_data.py
"""

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "tasteprint" / "demo_data"
GENRES = {
    "Science Fiction": [
        "Orbital Drift",
        "The Last Relay",
        "Signal from Vega",
        "Copper Moon",
        "Night Engines",
        "The Glass Colony",
    ],
    "Fantasy": [
        "The Ember Crown",
        "Riverwitch",
        "Salt and Dragons",
        "The Ninth Gate Keeper",
        "Moss Kingdom",
        "A Song for Stone",
    ],
    "Mystery": [
        "The Quiet Alibi",
        "Murder at Low Tide",
        "The Ledger",
        "Seven Locked Rooms",
        "Foxglove Lane",
        "The Borrowed Name",
    ],
    "Romance": [
        "Letters to Lisbon",
        "Summer Ferry",
        "The Baker's Promise",
        "Second Spring",
        "Harbour Lights",
        "Paper Hearts",
    ],
    "History": [
        "Empires of Salt",
        "The Silk Roads Retold",
        "Iron and Steam",
        "A River Through Rome",
        "The Long Winter of 1709",
        "Maps of Nowhere",
    ],
    "Cooking": [
        "Fire and Flour",
        "The Weeknight Pot",
        "Ferment!",
        "Small Plates",
        "Bread Every Day",
        "Spice Routes Kitchen",
    ],
}
TASTES = {  # user -> (loved genres, disliked genre)
    "ana": (["Science Fiction", "Fantasy"], "Romance"),
    "ben": (["Mystery", "History"], "Fantasy"),
    "chloe": (["Romance", "Cooking"], "Science Fiction"),
    "dev": (["Science Fiction", "Mystery"], "Cooking"),
    "eli": (["Fantasy", "Romance"], "History"),
    "fatima": (["History", "Cooking"], "Mystery"),
    "gus": (["Science Fiction", "History"], "Romance"),
    "hana": (["Mystery", "Romance"], "Science Fiction"),
    "ivan": (["Fantasy", "Cooking"], "Mystery"),
    "jo": (["History", "Mystery"], "Cooking"),
    "kim": (["Cooking", "Science Fiction"], "Fantasy"),
    "leo": (["Romance", "History"], "Science Fiction"),
}


def main() -> None:
    rng = random.Random(7)
    OUT.mkdir(parents=True, exist_ok=True)
    items, by_genre = [], {}
    for genre, titles in GENRES.items():
        for n, title in enumerate(titles):
            item_id = f"b{len(items) + 1:03d}"
            by_genre.setdefault(genre, []).append(item_id)
            items.append(
                {
                    "item_id": item_id,
                    "title": title,
                    "description": f"A {genre.lower()} book.",
                    "attributes": {"genre": [genre], "format": ["paperback" if n % 2 else "hardcover"]},
                }
            )
    events, clock = [], 1_600_000_000
    for user, (loved, disliked) in TASTES.items():
        picks = [(i, rng.choice([4, 5])) for g in loved for i in rng.sample(by_genre[g], 4)]
        picks += [(i, rng.choice([1, 2])) for i in rng.sample(by_genre[disliked], 2)]
        rng.shuffle(picks)
        for item_id, rating in picks:
            clock += rng.randint(3_600, 86_400)
            events.append(
                {
                    "user_id": user,
                    "item_id": item_id,
                    "kind": "rating",
                    "rating": rating,
                    "timestamp": clock,
                    "platform": "books",
                }
            )
        events.append(
            {
                "user_id": user,
                "item_id": picks[0][0],
                "kind": "review",
                "timestamp": clock + 60,
                "text": f"Loved it - more {loved[0].lower()} please!",
                "platform": "books",
            }
        )
    (OUT / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    (OUT / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    print(f"wrote {len(items)} items and {len(events)} events to {OUT}")


if __name__ == "__main__":
    main()
