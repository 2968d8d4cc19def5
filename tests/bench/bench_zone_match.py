"""Benchmark ZoneIndex point matching at 10 and 10,000 zones.

Run with ``python -m tests.bench.bench_zone_match``. It prints figures only;
there is no timed assertion, because timings depend on the machine.

Zones are a grid of small squares over a city-sized area around Changsha
(about 30 km x 30 km). Every zone also gets an overlapping neighbour half the
time (a higher-priority zone over the same cell), so the priority logic is
exercised, not just the first hit. Points are uniform over a slightly larger
area, so some miss every zone.
"""

from __future__ import annotations

import argparse
import math
import random
import time

from shapely.geometry import box

from server.domain.geo import IndexedZone, ZoneIndex

# A ~30 km x 30 km box around central Changsha.
WEST, SOUTH, EAST, NORTH = 112.83, 28.05, 113.14, 28.32


def grid_zones(count: int, rng: random.Random) -> list[IndexedZone]:
    """``count`` zones: a square grid of cells, each zone a square inside its cell."""
    side = math.ceil(math.sqrt(count))
    cell_w = (EAST - WEST) / side
    cell_h = (NORTH - SOUTH) / side
    zones: list[IndexedZone] = []
    for i in range(count):
        row, col = divmod(i, side)
        x0 = WEST + col * cell_w
        y0 = SOUTH + row * cell_h
        if i % 2:
            # A higher-priority zone covering part of the cell and spilling
            # into its neighbour, so some points hit two zones.
            geom = box(x0 + cell_w * 0.5, y0, x0 + cell_w * 1.5, y0 + cell_h)
            priority = 1
        else:
            geom = box(x0, y0, x0 + cell_w, y0 + cell_h)
            priority = 0
        zones.append(IndexedZone(i + 1, priority, geom, (f"district-{rng.randrange(20)}",)))
    return zones


def bench(count: int, seconds: float, seed: int) -> None:
    rng = random.Random(seed)
    zones = grid_zones(count, rng)

    start = time.perf_counter()
    index = ZoneIndex(zones)
    build = time.perf_counter() - start

    # Points a little beyond the covered area so that misses are measured too.
    margin = 0.02
    points = [
        (rng.uniform(WEST - margin, EAST + margin), rng.uniform(SOUTH - margin, NORTH + margin))
        for _ in range(100_000)
    ]

    done = hits = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for lng, lat in points[done % len(points) : done % len(points) + 1000]:
            if index.match_point(lng, lat) is not None:
                hits += 1
        done += 1000
    elapsed = time.perf_counter() - start
    print(
        f"{count:>6} zones: build {build * 1000:8.2f} ms, "
        f"{done / elapsed:10,.0f} point lookups/s "
        f"({done:,} lookups in {elapsed:.1f} s, {hits / done:.0%} hit a zone)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="time spent on lookups per size")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for count in (10, 10_000):
        bench(count, args.seconds, args.seed)


if __name__ == "__main__":
    main()
