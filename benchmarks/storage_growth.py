"""Per-fire cost as a session grows: ``python -m benchmarks.storage_growth``.

For every backend, two cases, each the median time of a fire when the
session already holds 10, 100, 1000 and 5000 instances (target: at most 2x
between 10 and 5000):

* *ran*: an ``andEvery`` trigger whose instances run at once (each fire
  creates one scheduled instance);
* *waiting*: ``after: [dataReceived], andEvery: creditsDepleted`` before
  ``dataReceived`` fires: each fire creates one more instance that waits.

Starts its own redis-server when one is on PATH.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ._setup import machine, make_app, median_ms, optional_redis, storage_urls, timed

SIZES = (10, 100, 1000, 5000)


CASES = {
    "ran": ({"t_page": {"after": ["start"], "andEvery": "page", "run": "bench.page"}}, "start", "page"),
    "waiting": (
        {"t_x": {"after": ["dataReceived"], "andEvery": "creditsDepleted", "run": "bench.page"}},
        None,
        "creditsDepleted",
    ),
}


def growth(url: str, case: str, sizes: tuple[int, ...], samples: int) -> list[float]:
    configs, first, trigger = CASES[case]
    app = make_app(url)
    app.triggers.configure(configs)
    session = app.triggers.session(f"growth-{case}")
    if first:
        session.fire(first)
    count = 0
    medians = []
    for size in sizes:
        while count < size:  # fill the session up to ``size`` instances
            session.fire(trigger, {"n": count})
            count += 1
        medians.append(median_ms(timed(lambda: session.fire(trigger, {"n": -1}), samples)))
        count += samples
    app.triggers.storage.delete_session(f"growth-{case}")
    return medians


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    args = parser.parse_args(argv)
    sizes = (10, 50) if args.quick else SIZES
    samples = 20 if args.quick else 200

    with tempfile.TemporaryDirectory() as tmp:
        with optional_redis(Path(tmp)) as redis_url:
            rows = []
            for name, url in storage_urls(Path(tmp), redis_url, "growth").items():
                for case in CASES:
                    medians = growth(url, case, sizes, samples)
                    rows.append(
                        {"backend": f"{name} ({case})", "medians_ms": medians, "ratio": medians[-1] / medians[0]}
                    )
    print(f"per-fire median (ms) by instances already in the session; {samples} fires each; {machine()}")
    print(f"| backend | {' | '.join(str(s) for s in sizes)} | fires/s at {sizes[-1]} | {sizes[-1]}/{sizes[0]} |")
    print("|---|" + "---|" * (len(sizes) + 2))
    for row in rows:
        medians = row["medians_ms"]
        assert isinstance(medians, list)
        cells = " | ".join(f"{m:.3f}" for m in medians)
        print(f"| {row['backend']} | {cells} | {1000 / medians[-1]:.0f} | {row['ratio']:.2f}x |")
    return rows


if __name__ == "__main__":
    main()
