"""The product catalog: hierarchy, titles, descriptions, attributes, cost, price and lifecycle."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl

from retail_assets.sources.contracts import PRODUCTS
from retail_assets.sources.synthetic.config import substream
from retail_assets.sources.synthetic.taxonomy import (
    APPAREL_SIZES_MEN,
    APPAREL_SIZES_WOMEN,
    CARE,
    CATEGORIES,
    DEPARTMENT_NAMES,
    FOOTWEAR_SIZES_MEN,
    FOOTWEAR_SIZES_WOMEN,
    HELMET_SIZES,
    TIER_PRICE,
    Subcategory,
    department,
)

TIERS = ("value", "mainstream", "premium")
# Share of SKUs launched inside the window (cold start) and discontinued inside it.
NEW_SKU_SHARE = 0.18
DISCONTINUED_SHARE = 0.08


@dataclass(frozen=True)
class Catalog:
    frame: pl.DataFrame
    sku_ids: list[str]
    dept: np.ndarray  # index into DEPARTMENT_NAMES
    cat: np.ndarray  # index into CATEGORIES
    tier: np.ndarray  # index into TIERS
    list_price: np.ndarray
    launch: np.ndarray  # day index of launch in the window (negative: before the window)
    last_day: np.ndarray  # day index of the last day sold (n_days - 1 or later if never)
    popularity: np.ndarray  # latent base demand (units/day in a typical supermarket)

    @property
    def n(self) -> int:
        return len(self.sku_ids)

    def active(self, n_days: int) -> np.ndarray:
        """Boolean [day, sku]: the SKU is on sale that day."""
        day = np.arange(n_days)[:, None]
        return (day >= self.launch[None, :]) & (day <= self.last_day[None, :])


def charm(values: np.ndarray) -> np.ndarray:
    """Shelf prices end in .99 (9.99 / 49.99 steps on dearer items), as in most retailers."""
    return np.where(
        values < 20,
        np.maximum(np.floor(values) + 0.99, 4.99),
        np.where(values < 200, np.round(values / 5) * 5 - 0.01, np.round(values / 10) * 10 - 0.01),
    )


def _assign_categories(rng: np.random.Generator, n_skus: int) -> np.ndarray:
    """Every category gets a SKU before any gets a second, so even tiny catalogs are complete."""
    n_cat = len(CATEGORIES)
    weights = np.array([len(c.subcategories) for _, c in CATEGORIES], dtype=float)
    first = rng.permutation(n_cat)[: min(n_skus, n_cat)]
    rest = rng.choice(n_cat, size=max(n_skus - n_cat, 0), p=weights / weights.sum())
    return rng.permutation(np.concatenate([first, rest]))


def _sizes(sub: Subcategory, gender: str | None) -> str | None:
    if sub.sizing == "apparel":
        return {"Men's": APPAREL_SIZES_MEN, "Women's": APPAREL_SIZES_WOMEN}.get(
            gender or "", "XS,S,M,L,XL,XXL"
        )
    if sub.sizing == "footwear":
        return {"Men's": FOOTWEAR_SIZES_MEN, "Women's": FOOTWEAR_SIZES_WOMEN}.get(
            gender or "", "36,37,38,39,40,41,42,43,44,45,46"
        )
    if sub.sizing == "helmet":
        return HELMET_SIZES
    return None


_EXTRA_TITLE = {
    "screen_in": lambda v: f"{v:g}-inch",
    "capacity_l": lambda v: f"{v:g}L",
    "pieces": lambda v: f"{v}-Piece",
    "capacity_persons": lambda v: f"{v}-Person",
}

_EXTRA_SENTENCE = {
    "capacity_l": "It holds {v:g} liters.",
    "screen_in": "It has a {v:g}-inch screen.",
    "battery_h": "Battery life is up to {v} hours on a single charge.",
    "lumens": "It puts out up to {v} lumens.",
    "pieces": "The set includes {v} pieces.",
    "age_min": "Recommended for ages {v} and up.",
    "volume_ml": "The bottle contains {v} ml.",
    "wattage_w": "It runs at {v} watts.",
    "diameter_cm": "It measures {v} cm across.",
    "comfort_temp_c": "It is comfort rated to {v} °C.",
    "burners": "It has {v} burner(s) with independent flame control.",
    "capacity_persons": "It sleeps {v} people.",
    "bed_size": "It is sized for a {v} bed.",
    "channels": "It delivers {v}-channel surround sound.",
    "thickness_mm": "It is {v} mm thick for joint support.",
    "max_weight_kg": "Each dumbbell adjusts up to {v} kg.",
    "max_load_kg": "It supports riders up to {v} kg.",
    "players": "It is for {v} players.",
    "certification": "It is certified to {v} safety standards.",
}

_OPENERS = (
    "The {brand} {name} is made {use}.",
    "Built {use}, the {name} from {brand} is a reliable everyday pick.",
    "Meet the {brand} {name}, designed {use}.",
    "{brand}'s {name} is a customer favorite {use}.",
    "Looking for something {use}? The {brand} {name} has you covered.",
)
_MATERIAL = (
    "It is made from {material} and {feature}.",
    "Crafted from {material}, it {feature}.",
    "Made of {material}, it {feature}.",
)


def _describe(
    rng: np.random.Generator,
    sub: Subcategory,
    brand: str,
    short_name: str,
    material: str | None,
    color: str | None,
    sizes: str | None,
    waterproof: bool | None,
    extras: dict[str, Any],
    weight_kg: float,
    warranty_years: int,
    is_beauty: bool,
) -> str:
    def pick(options: tuple[str, ...]) -> str:
        return options[int(rng.integers(len(options)))]

    features = list(rng.permutation(sub.features))
    use = pick(sub.uses)
    sentences = [pick(_OPENERS).format(brand=brand, name=short_name, use=use)]
    if is_beauty:
        sentences.append(f"Formulated with {material}, it {features[0]}.")
    elif material:
        sentences.append(pick(_MATERIAL).format(material=material, feature=features[0]))
    else:
        sentences.append(f"It {features[0]}.")
    if waterproof is True:
        sentences.append(
            pick(
                (
                    "It is fully waterproof, so heavy rain and splashes are no problem.",
                    "A waterproof, breathable build keeps water out and you dry.",
                    "Waterproof construction means it shrugs off rain, snow and puddles.",
                )
            )
        )
    elif waterproof is False:
        sentences.append(
            pick(
                (
                    "It is water resistant for light showers but not waterproof.",
                    "It is not waterproof, so keep it out of heavy rain.",
                )
            )
        )
    for key, value in extras.items():
        sentences.append(_EXTRA_SENTENCE[key].format(v=value))
    if len(features) > 1:
        second = features[1]
        sentences.append(
            f"It is also {second[3:]}." if second.startswith("is ") else f"It also {second}."
        )
    if color:
        if sizes:
            sizes_list = sizes.split(",")
            unit = "EU sizes" if sub.sizing == "footwear" else "sizes"
            sentences.append(
                f"Available in {color}, in {unit} {sizes_list[0]} to {sizes_list[-1]}."
            )
        else:
            sentences.append(f"This one comes in {color}.")
    if not is_beauty:
        sentences.append(f"It weighs {weight_kg:g} kg.")
    sentences.append(CARE[sub.care])
    if warranty_years:
        sentences.append(
            f"Covered by our {warranty_years}-year warranty against manufacturing defects."
        )
    return " ".join(sentences)


def build_catalog(
    seed: int, n_skus: int, start: date, n_days: int, warranty_years: dict[str, int]
) -> Catalog:
    rng = substream(seed, "catalog")
    cats = _assign_categories(rng, n_skus)
    rows: list[dict[str, Any]] = []
    dept_idx = np.empty(n_skus, dtype=np.int16)
    tier_idx = np.empty(n_skus, dtype=np.int8)
    prices = np.empty(n_skus)
    for i, cat_i in enumerate(cats):
        dept_name, cat = CATEGORIES[cat_i]
        dept = department(dept_name)
        sub = cat.subcategories[int(rng.integers(len(cat.subcategories)))]
        brand, tier = dept.brands[int(rng.integers(len(dept.brands)))]
        is_beauty = dept_name == "Beauty"
        gender = None
        if sub.gendered:
            gender = str(rng.choice(["Men's", "Women's", "Unisex"], p=[0.45, 0.45, 0.1]))
        color = sub.colors[int(rng.integers(len(sub.colors)))] if sub.colors else None
        ingredient = sub.materials[int(rng.integers(len(sub.materials)))]
        material = None if is_beauty else ingredient
        waterproof = None if sub.waterproof is None else bool(rng.random() < sub.waterproof)
        sizes = _sizes(sub, gender)
        extras = {key: options[int(rng.integers(len(options)))] for key, options in sub.extras}
        weight = round(float(rng.uniform(*sub.weight_kg)), 2)
        low, high = sub.price
        raw_price = math.exp(rng.uniform(math.log(low), math.log(high)))
        shelf = raw_price * TIER_PRICE[tier] * math.exp(rng.normal(0, 0.05))
        price = round(float(charm(np.array(shelf))), 2)
        margin = rng.uniform(*dept.margin) + (0.05 if tier == "premium" else 0.0)
        cost = round(price * (1 - margin), 2)

        if waterproof and rng.random() < 0.6:
            adjective = "Waterproof"
        else:
            # An adjective that repeats the noun ("Adjustable Adjustable ...") reads as a bug.
            usable = [a for a in sub.adjectives if a.lower() not in sub.noun.lower()]
            adjective = usable[int(rng.integers(len(usable)))]
        spec = next((_EXTRA_TITLE[k](v) for k, v in extras.items() if k in _EXTRA_TITLE), None)
        short_name = " ".join(p for p in (adjective, spec, sub.noun) if p)
        title = " ".join(p for p in (brand, gender, short_name) if p)
        if color:
            title += f" - {color}"
        years = warranty_years[dept_name]
        description = _describe(
            rng,
            sub,
            brand,
            short_name,
            ingredient,
            color,
            sizes,
            waterproof,
            extras,
            weight,
            years,
            is_beauty,
        )
        attributes: dict[str, Any] = {
            "gender": gender,
            "color": color,
            "material": material,
            "sizes": sizes.split(",") if sizes else None,
            "waterproof": waterproof,
            "weight_kg": weight,
            "warranty_years": years,
            "brand_tier": tier,
        }
        if is_beauty:
            key = "scent_notes" if ingredient.startswith("notes of") else "key_ingredients"
            attributes[key] = ingredient.removeprefix("notes of ")
        attributes.update(extras)
        rows.append(
            {
                "sku": f"SKU-{i + 1:05d}",
                "department": dept_name,
                "category": cat.name,
                "subcategory": sub.name,
                "brand": brand,
                "title": title,
                "description": description,
                "color": color,
                "material": material,
                "sizes": sizes,
                "waterproof": waterproof,
                "attributes": json.dumps(
                    {k: v for k, v in attributes.items() if v is not None}, sort_keys=True
                ),
                "unit_cost": cost,
                "list_price": price,
            }
        )
        dept_idx[i] = DEPARTMENT_NAMES.index(dept_name)
        tier_idx[i] = TIERS.index(tier)
        prices[i] = price

    launch, last_day = _lifecycle(rng, n_skus, n_days)
    popularity = np.clip(
        2.2 * np.exp(rng.normal(0, 0.7, n_skus)) * (prices / 40) ** -0.5, 0.03, 60.0
    )
    frame = pl.DataFrame(rows).with_columns(
        launch_date=pl.Series([start + timedelta(days=int(d)) for d in launch], dtype=pl.Date),
        discontinued_date=pl.Series(
            [start + timedelta(days=int(d)) if d < n_days else None for d in last_day],
            dtype=pl.Date,
        ),
    )
    return Catalog(
        frame=PRODUCTS.conform(frame),
        sku_ids=[r["sku"] for r in rows],
        dept=dept_idx,
        cat=cats.astype(np.int16),
        tier=tier_idx,
        list_price=prices,
        launch=launch,
        last_day=last_day,
        popularity=popularity,
    )


def _lifecycle(rng: np.random.Generator, n_skus: int, n_days: int) -> tuple[np.ndarray, np.ndarray]:
    """Launch and last-sale day indices. New SKUs arrive all through the window."""
    launch = -rng.integers(1, 1500, n_skus)
    n_new = max(2, round(NEW_SKU_SHARE * n_skus))
    n_disc = max(2, round(DISCONTINUED_SHARE * n_skus))
    order = rng.permutation(n_skus)
    new, disc = order[:n_new], order[n_new : n_new + n_disc]
    launch[new] = rng.integers(30, n_days - 60, n_new)
    last_day = np.full(n_skus, n_days + 10_000)
    last_day[disc] = rng.integers(90, n_days - 30, n_disc)
    return launch.astype(np.int32), last_day.astype(np.int32)
