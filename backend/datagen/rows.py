"""Row tuples for each table, built in chunks from one seeded random generator.

Tuples follow `schema.KNOWN_COLUMNS`. The hot path is orders and their items (a
million orders means ~2.5 million items): random values are drawn for a whole chunk
at once with `Random.choices` (C speed), and the per-row loop only assembles tuples.
Popularity is skewed (a few users and products account for much of the sales), and
orders get increasing, evenly spread timestamps over the last two years, so ids grow
with time as in a real shop.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import accumulate
from typing import Callable, Iterator, Sequence

from backend.datagen import naming
from backend.datagen.vocabulary import CATEGORIES
from backend.models import ORDER_STATUSES
from backend.text import normalize_email

DAY = 86_400.0
ORDER_SPAN = 2 * 365 * DAY
ITEM_COUNTS, ITEM_WEIGHTS = (1, 2, 3, 4, 5), (30, 25, 20, 15, 10)
MEAN_ITEMS_PER_ORDER = sum(c * w for c, w in zip(ITEM_COUNTS, ITEM_WEIGHTS)) / sum(ITEM_WEIGHTS)  # 2.5
QUANTITIES, QUANTITY_WEIGHTS = (1, 2, 3, 4), (70, 18, 8, 4)
# Status by order age: orders of the last days are still moving, older ones are settled.
RECENT_STATUS_WEIGHTS = (
    (2 * DAY, {"pending": 45, "paid": 45, "cancelled": 10}),
    (10 * DAY, {"paid": 15, "shipped": 75, "cancelled": 10}),
)
SETTLED_STATUS_WEIGHTS = {"delivered": 92, "cancelled": 8}

# Rows of these tables hold only integers, status words and timestamps: nothing that
# a COPY would have to quote or escape (see Writer.write's `plain`).
PLAIN_TABLES = frozenset({"orders", "order_items"})


@dataclass(frozen=True)
class Clock:
    """`now` in epoch seconds and the writer's way of turning epoch seconds into a column value."""

    now: float
    stamp: Callable[[float], object]


def user_chunks(rng: random.Random, *, first_id: int, count: int, locales: Sequence[str],
                default_locale: str, password_hash: str, clock: Clock, batch_size: int) -> Iterator[list[tuple]]:
    """Users registered before the order history starts; the default locale is twice as common."""
    locale_cum = list(accumulate(2 if locale == default_locale else 1 for locale in locales))
    for start in range(0, count, batch_size):
        ids = range(first_id + start, first_id + min(start + batch_size, count))
        chosen = rng.choices(locales, cum_weights=locale_cum, k=len(ids))
        rows = []
        for user_id, locale in zip(ids, chosen):
            created = clock.stamp(clock.now - ORDER_SPAN - rng.random() * 365 * DAY)
            address = naming.email(rng, locale, user_id)
            rows.append((user_id, address, locale, password_hash, created, created, normalize_email(address)))
        yield rows


@dataclass
class ProductChunk:
    products: list[tuple]
    translations: list[tuple]
    priced: list[tuple[int, int]]  # (id, price_cents), for orders to pick from


def product_chunks(rng: random.Random, *, first_id: int, first_translation_id: int, count: int,
                   owner_ids: Sequence[int], locales: Sequence[str], slugify: Callable[[str, str, int], str] | None,
                   clock: Clock, batch_size: int) -> Iterator[ProductChunk]:
    """Products with one translation per locale; `slugify` is None when there is no slug column."""
    translation_id = first_translation_id
    for start in range(0, count, batch_size):
        chunk = ProductChunk([], [], [])
        for product_id in range(first_id + start, first_id + min(start + batch_size, count)):
            concept = naming.draw_concept(rng)
            spec = CATEGORIES[concept.category]
            price = _shop_price(rng, *spec["price"])
            stock = 0 if rng.random() < 0.05 else rng.randint(1, 500)
            created = clock.stamp(clock.now - ORDER_SPAN - rng.random() * 365 * DAY)
            sku = f"{spec['sku']}-{product_id:07d}"
            chunk.products.append((product_id, rng.choice(owner_ids), sku, price, stock, created, created))
            chunk.priced.append((product_id, price))
            for locale in locales:
                name = naming.product_name(concept, locale)
                slug = slugify(name, locale, product_id) if slugify else None
                chunk.translations.append(
                    (translation_id, product_id, locale, name, naming.description(name, locale, rng), slug))
                translation_id += 1
        yield chunk


def order_chunks(rng: random.Random, *, first_id: int, first_item_id: int, count: int,
                 user_ids: Sequence[int], products: Sequence[tuple[int, int]], clock: Clock,
                 batch_size: int) -> Iterator[tuple[list[tuple], list[tuple]]]:
    """(orders, items) per chunk of `batch_size` orders; each order has 1..5 distinct products."""
    user_cum = _popularity(rng, len(user_ids))
    product_cum = _popularity(rng, len(products))
    product_ids, prices = [pid for pid, _ in products], [price for _, price in products]
    item_cum, quantity_cum = list(accumulate(ITEM_WEIGHTS)), list(accumulate(QUANTITY_WEIGHTS))
    settled, settled_cum = _allowed(SETTLED_STATUS_WEIGHTS)
    recent = [(max_age, *_allowed(weights)) for max_age, weights in RECENT_STATUS_WEIGHTS]
    step = ORDER_SPAN / count if count else 0.0
    first_time, settled_before = clock.now - ORDER_SPAN, clock.now - RECENT_STATUS_WEIGHTS[-1][0]
    stamp, jitter, item_id = clock.stamp, rng.random, first_item_id

    for start in range(0, count, batch_size):
        n = min(batch_size, count - start)
        buyers = rng.choices(user_ids, cum_weights=user_cum, k=n)
        sizes = rng.choices(ITEM_COUNTS, cum_weights=item_cum, k=n)
        if len(products) < ITEM_COUNTS[-1]:
            sizes = [min(size, len(products)) for size in sizes]
        chosen_statuses = rng.choices(settled, cum_weights=settled_cum, k=n)
        picks = rng.choices(range(len(products)), cum_weights=product_cum, k=sum(sizes))
        quantities = rng.choices(QUANTITIES, cum_weights=quantity_cum, k=len(picks))
        orders, items, line = [], [], 0
        add_item = items.append
        for i in range(n):
            order_id, end = first_id + start + i, line + sizes[i]
            total, seen = 0, set()
            for j in range(line, end):
                pick = picks[j]
                while pick in seen:  # a product appears once per order: take the next one
                    pick = (pick + 1) % len(products)
                seen.add(pick)
                add_item((item_id, order_id, product_ids[pick], quantities[j], prices[pick]))
                item_id += 1
                total += quantities[j] * prices[pick]
            line = end
            created = first_time + (start + i + jitter()) * step
            status = chosen_statuses[i]
            if created > settled_before:
                status = _recent_status(rng, clock.now - created, recent)
            when = stamp(created)
            orders.append((order_id, buyers[i], status, when, when, total))
        yield orders, items


def _shop_price(rng: random.Random, low_cents: int, high_cents: int) -> int:
    """Prices as shops set them: 12.99, 49.90, 120.00."""
    euros = rng.randint(low_cents // 100, high_cents // 100)
    return max(0, euros * 100 - rng.choice((1, 1, 10, 0)))


def _popularity(rng: random.Random, n: int) -> list[float]:
    """Cumulative Pareto weights: roughly 20% of the entries get 80% of the picks."""
    return list(accumulate(min(rng.paretovariate(1.16), 1000.0) for _ in range(n)))


def _allowed(weights: dict[str, int]) -> tuple[tuple[str, ...], list[int]]:
    """(statuses, cumulative weights) restricted to the statuses the model allows."""
    kept = {status: weight for status, weight in weights.items() if status in ORDER_STATUSES}
    kept = kept or {status: 1 for status in ORDER_STATUSES}
    return tuple(kept), list(accumulate(kept.values()))


def _recent_status(rng: random.Random, age: float, recent: list) -> str:
    for max_age, statuses, cum in recent:
        if age <= max_age:
            return rng.choices(statuses, cum_weights=cum)[0]
    return recent[-1][1][-1]
