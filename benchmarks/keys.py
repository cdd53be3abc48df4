"""What an idempotency key costs a fire: ``python -m benchmarks.keys``.

For every backend, ``fire()`` of an ``andEvery`` trigger that schedules one
instance (the null runner: no message), without a key and with a fresh key
(``key=...``), the two interleaved block by block (``--rounds`` blocks of
``--fires`` fires each, the order alternating), each into its own session;
and a duplicate fire (a key used already: the answer from storage, nothing
written). Medians per fire, and the keyed/plain ratio. On Redis, also the
script calls (round trips) per fire, counted. Starts its own redis-server.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import uuid
from pathlib import Path
from typing import Any

from ._setup import machine, make_app, optional_redis, storage_urls, timed

CONFIGS = {"t_page": {"after": ["start"], "andEvery": "page", "run": "bench.page"}}


def _round_trips(app: Any, fire: Any, count: int) -> float | None:
    """Script calls per fire on Redis (None elsewhere)."""
    store = app.triggers.storage
    if not hasattr(store, "scripts"):
        return None
    calls = [0]
    real = store.call

    def counted(call: Any) -> Any:
        calls[0] += 1
        return real(call)

    store.call = counted
    try:
        for _ in range(count):
            fire()
    finally:
        del store.call
    return calls[0] / count


def measure(url: str, rounds: int, fires: int) -> dict[str, Any]:
    app = make_app(url)
    app.triggers.configure(CONFIGS)
    tag = uuid.uuid4().hex[:8]
    plain, keyed = app.triggers.session(f"plain-{tag}"), app.triggers.session(f"keyed-{tag}")
    for session in (plain, keyed):
        session.fire("start")
        session.fire("page", key="warm-up")
    counter = iter(range(10**9))

    def fire_plain() -> Any:
        return plain.fire("page", {"n": 1})

    def fire_keyed() -> Any:
        return keyed.fire("page", {"n": 1}, key=f"k-{next(counter)}")

    def fire_duplicate() -> Any:
        found = keyed.fire("page", {"n": 1}, key="warm-up")
        assert found.duplicate
        return found

    samples: dict[str, list[float]] = {"plain": [], "keyed": [], "duplicate": []}
    for number in range(rounds):
        order = [("plain", fire_plain), ("keyed", fire_keyed)]
        for name, fire in order if number % 2 == 0 else order[::-1]:
            samples[name] += timed(fire, fires)
        samples["duplicate"] += timed(fire_duplicate, max(1, fires // 4))
    trips = {name: _round_trips(app, fire, 20) for name, fire in (("plain", fire_plain), ("keyed", fire_keyed))}
    for session in (plain, keyed):
        app.triggers.storage.delete_session(session.uid)
    medians = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    return {"medians_ms": medians, "ratio": medians["keyed"] / medians["plain"], "round_trips": trips}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few fires, for a smoke test")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--fires", type=int, default=50)
    args = parser.parse_args(argv)
    rounds, fires = (2, 5) if args.quick else (args.rounds, args.fires)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        with optional_redis(Path(tmp)) as redis_url:
            for name, url in storage_urls(Path(tmp), redis_url, "keys").items():
                rows.append({"backend": name, **measure(url, rounds, fires)})
    print(f"per-fire median (ms), {rounds} interleaved blocks of {fires} fires each; {machine()}")
    print("| backend | fire | fire with a key | ratio | duplicate fire | round trips (plain / key) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        m, trips = row["medians_ms"], row["round_trips"]
        shown = "-" if trips["plain"] is None else f"{trips['plain']:.2f} / {trips['keyed']:.2f}"
        print(
            f"| {row['backend']} | {m['plain']:.3f} | {m['keyed']:.3f} | {row['ratio']:.2f}x "
            f"| {m['duplicate']:.3f} | {shown} |"
        )
    return rows


if __name__ == "__main__":
    main()
