"""Customer-facing policies and FAQs, and the facts they state.

The facts are drawn first and the markdown is written from them, so the ground truth holds
exactly what the documents say: an assistant answering "how long do I have to return boots?"
can be checked against ``policy_facts["returns"]["window_days"]``.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import polars as pl

from retail_assets.sources.contracts import POLICY_DOCUMENTS
from retail_assets.sources.synthetic.config import substream
from retail_assets.sources.synthetic.taxonomy import DEPARTMENT_NAMES

RETAILER = "Larkfield"

APPAREL_SIZE_CHART = {
    "men": {
        "S": {"chest_cm": (88, 96), "waist_cm": (73, 81)},
        "M": {"chest_cm": (96, 104), "waist_cm": (81, 89)},
        "L": {"chest_cm": (104, 112), "waist_cm": (89, 97)},
        "XL": {"chest_cm": (112, 124), "waist_cm": (97, 109)},
        "XXL": {"chest_cm": (124, 136), "waist_cm": (109, 121)},
    },
    "women": {
        "XS": {"bust_cm": (78, 82), "waist_cm": (60, 64), "hip_cm": (86, 90)},
        "S": {"bust_cm": (82, 87), "waist_cm": (64, 69), "hip_cm": (90, 95)},
        "M": {"bust_cm": (87, 93), "waist_cm": (69, 75), "hip_cm": (95, 101)},
        "L": {"bust_cm": (93, 100), "waist_cm": (75, 82), "hip_cm": (101, 108)},
        "XL": {"bust_cm": (100, 108), "waist_cm": (82, 90), "hip_cm": (108, 116)},
    },
}

# EU size -> (US men, US women, foot length in cm)
FOOTWEAR_SIZE_CHART = {
    36: (None, 5.5, 22.5),
    37: (None, 6.5, 23.5),
    38: (None, 7.5, 24.0),
    39: (6.5, 8.5, 25.0),
    40: (7.0, 9.0, 25.5),
    41: (8.0, 10.0, 26.0),
    42: (8.5, 10.5, 27.0),
    43: (9.5, None, 27.5),
    44: (10.0, None, 28.5),
    45: (11.0, None, 29.0),
    46: (12.0, None, 30.0),
}


def policy_facts(seed: int, start_date: date, competitors: tuple[str, ...]) -> dict[str, Any]:
    """Draw the concrete policy terms for this seed (JSON-serialisable)."""
    rng = substream(seed, "policy_facts")

    def pick(options: list[Any]) -> Any:
        return options[int(rng.integers(len(options)))]

    window_days = pick([30, 45, 60, 90])
    warranty = {
        "Apparel": 1,
        "Footwear": pick([1, 2]),
        "Outdoor": pick([2, 3, 5]),
        "Home & Kitchen": pick([2, 3]),
        "Electronics": pick([1, 2]),
        "Beauty": 0,
        "Toys": 1,
        "Sports & Fitness": pick([1, 2]),
    }
    if set(warranty) != set(DEPARTMENT_NAMES):
        raise RuntimeError("warranty terms must cover exactly the catalog's departments")
    points_per_usd = pick([1, 2])
    return {
        "retailer": RETAILER,
        "returns": {
            "window_days": window_days,
            "electronics_window_days": pick([d for d in (14, 15, 30) if d <= window_days]),
            "opened_electronics_restocking_fee_pct": pick([0, 10, 15]),
            "refund_business_days": pick([3, 5, 7]),
            "free_return_shipping": bool(rng.random() < 0.5),
            "return_label_fee_usd": pick([4.95, 5.95, 6.5]),
            "holiday_extension": {
                "purchased_from": "11-01",
                "return_by": "01-31",
            },
            "non_returnable": [
                "opened beauty and personal care products (unless faulty)",
                "gift cards",
                "personalized or engraved items",
            ],
            "outdoor_trail_guarantee_days": pick([30, 60]),
        },
        "shipping": {
            "free_shipping_threshold_usd": pick([35, 49, 50, 75]),
            "standard_fee_usd": pick([4.99, 5.99, 6.99]),
            "standard_business_days": pick([[3, 5], [2, 5], [3, 7]]),
            "express_fee_usd": pick([12.99, 14.99, 16.99]),
            "express_business_days": [1, 2],
            "order_cutoff_time": pick(["12:00", "14:00", "15:00"]),
            "click_and_collect_ready_hours": pick([2, 4]),
            "ships_to": ["US", "CA"],
            "international_fee_usd": pick([19.99, 24.99]),
            "international_business_days": [7, 14],
            "oversized_delivery_fee_usd": pick([49.0, 69.0, 79.0]),
            "oversized_items": ["televisions", "coolers over 40 L", "tents"],
        },
        "warranty": {
            "years_by_department": warranty,
            "extended_warranty": {
                "departments": ["Electronics", "Home & Kitchen"],
                "extra_years": pick([2, 3]),
                "price_pct_of_item": pick([10, 12, 15]),
            },
            "claim_requires": ["proof of purchase", "description or photo of the fault"],
        },
        "price_match": {
            "competitors": list(competitors),
            "window_days": pick([7, 14, 30]),
            "also_matches_own_lower_price": True,
            "excludes": [
                "clearance and open-box items",
                "marketplace and third-party sellers",
                "Black Friday and Cyber Monday doorbusters",
            ],
            "max_units_per_item": pick([2, 4]),
        },
        "loyalty": {
            "program_name": f"{RETAILER} Rewards",
            "points_per_usd": points_per_usd,
            "points_per_reward": pick([100, 200]) * points_per_usd,
            "reward_value_usd": 5,
            "points_expire_months": pick([12, 18, 24]),
            "birthday_bonus_points": pick([100, 250]),
            "tiers": {
                "Member": {"annual_spend_usd": 0, "perks": ["points on every purchase"]},
                "Gold": {
                    "annual_spend_usd": pick([400, 500]),
                    "perks": ["free standard shipping on every order", "early sale access"],
                },
                "Platinum": {
                    "annual_spend_usd": pick([1200, 1500]),
                    "perks": [
                        "free express shipping",
                        "extended 30-day price protection",
                        "double points on your birthday month",
                    ],
                },
            },
        },
        "sizing": {
            "apparel": APPAREL_SIZE_CHART,
            "footwear_eu_to_us_and_cm": {
                str(eu): {"us_men": m, "us_women": w, "foot_length_cm": cm}
                for eu, (m, w, cm) in FOOTWEAR_SIZE_CHART.items()
            },
            "between_sizes_advice": pick(["size up", "size down for a closer fit"]),
        },
        "support": {
            "phone_hours": pick(["8am-8pm ET, Monday to Saturday", "9am-9pm ET, every day"]),
            "chat": "24/7 in the app and on the website",
        },
        "effective_dates": {
            doc_id: (start_date - timedelta(days=int(rng.integers(20, 500)))).isoformat()
            for doc_id in _DOC_IDS
        },
        "versions": {doc_id: int(rng.integers(1, 5)) for doc_id in _DOC_IDS},
    }


_DOC_IDS = (
    "policy-returns",
    "policy-shipping",
    "guide-sizing-apparel",
    "guide-sizing-footwear",
    "policy-warranty",
    "policy-price-match",
    "program-loyalty",
    "faq-general",
)


def _usd(value: float) -> str:
    return f"${value:,.2f}".replace(".00", "")


def _returns(f: dict[str, Any]) -> str:
    r, s = f["returns"], f["shipping"]
    label = (
        "Return shipping is free: use the prepaid label in your account."
        if r["free_return_shipping"]
        else f"Mail returns cost {_usd(r['return_label_fee_usd'])}, deducted from your refund; "
        "returns to a store are always free."
    )
    fee = r["opened_electronics_restocking_fee_pct"]
    restock = (
        "Opened electronics can be returned without a restocking fee."
        if fee == 0
        else f"Opened electronics carry a {fee}% restocking fee unless they are faulty."
    )
    items = "\n".join(f"- {item}" for item in r["non_returnable"])
    return f"""# Returns and refunds

You can return most items within **{r["window_days"]} days** of delivery or purchase for a full
refund to the original payment method, online or in any {f["retailer"]} store.

## Electronics
Electronics (audio, computers, tablets, TVs, phones and wearables) must be returned within
**{r["electronics_window_days"]} days**, with all accessories and packaging. {restock}

## Holiday returns
Items bought between November 1 and December 31 can be returned until **January 31** of the
following year.

## Trail-tested guarantee
Outdoor gear and hiking footwear that did not work out on the trail can be returned within
**{r["outdoor_trail_guarantee_days"]} days**, even if used.

## How refunds work
Refunds are issued within **{r["refund_business_days"]} business days** after we receive the
item. {label} Gift receipts are refunded as store credit. Original shipping fees are refunded
only when the item arrived damaged or wrong; orders over {_usd(s["free_shipping_threshold_usd"])}
ship free anyway.

## What cannot be returned
{items}
"""


def _shipping(f: dict[str, Any]) -> str:
    s = f["shipping"]
    lo, hi = s["standard_business_days"]
    elo, ehi = s["express_business_days"]
    ilo, ihi = s["international_business_days"]
    oversized = ", ".join(s["oversized_items"])
    free = _usd(s["free_shipping_threshold_usd"])
    return f"""# Shipping and delivery

| Option | Cost | Delivery time |
|---|---|---|
| Standard | {_usd(s["standard_fee_usd"])}, free over {free} | {lo}-{hi} business days |
| Express | {_usd(s["express_fee_usd"])} | {elo}-{ehi} business days |
| Click & collect | Free | ready in {s["click_and_collect_ready_hours"]} hours |
| Canada | {_usd(s["international_fee_usd"])} | {ilo}-{ihi} business days |

Standard shipping is **free on orders of {free} or more**
(after discounts, before tax). Orders placed before **{s["order_cutoff_time"]} ET** on a business
day leave our warehouse the same day. We ship to the United States and Canada.

## Oversized items
Deliveries of {oversized} are made by a two-person crew for a flat
{_usd(s["oversized_delivery_fee_usd"])}, which is not waived by the free-shipping threshold.

## Tracking
You receive a tracking link by email as soon as your order ships. Gold and Platinum members of
{f["loyalty"]["program_name"]} get free standard shipping on every order.
"""


def _sizing_apparel(f: dict[str, Any]) -> str:
    def cm(bounds: tuple[int, int]) -> str:
        return f"{bounds[0]}-{bounds[1]}"

    men = "\n".join(
        f"| {size} | {cm(v['chest_cm'])} | {cm(v['waist_cm'])} |"
        for size, v in APPAREL_SIZE_CHART["men"].items()
    )
    women = "\n".join(
        f"| {size} | {cm(v['bust_cm'])} | {cm(v['waist_cm'])} | {cm(v['hip_cm'])} |"
        for size, v in APPAREL_SIZE_CHART["women"].items()
    )
    return f"""# Apparel size guide

Measure around the fullest part of your chest (bust) and your natural waist, keeping the tape
level. If you are between sizes, we recommend you **{f["sizing"]["between_sizes_advice"]}**.
Outerwear is cut with room for a midlayer. Bike helmets come in S, M and L by head
circumference (S 51-55 cm, M 55-59 cm, L 59-63 cm).

## Men's sizes (cm)
| Size | Chest | Waist |
|---|---|---|
{men}

## Women's sizes (cm)
| Size | Bust | Waist | Hip |
|---|---|---|---|
{women}
"""


def _sizing_footwear(f: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {eu} | {m if m is not None else '-'} | {w if w is not None else '-'} | {cm} |"
        for eu, (m, w, cm) in FOOTWEAR_SIZE_CHART.items()
    )
    return f"""# Footwear size guide

Our shoes and boots are labelled in EU sizes. Men's styles run from EU 40 to 46 and women's
from EU 36 to 42. Measure your foot from heel to longest toe in the evening, when feet are
largest, and pick the size whose foot length is equal or just above. Hiking boots leave room
for thick socks; if you are between sizes, {f["sizing"]["between_sizes_advice"]}.

| EU | US men | US women | Foot length (cm) |
|---|---|---|---|
{rows}
"""


def _warranty(f: dict[str, Any]) -> str:
    w = f["warranty"]
    rows = "\n".join(
        f"| {dept} | {years} year{'s' if years != 1 else ''} |"
        if years
        else f"| {dept} | no warranty (covered by the returns policy) |"
        for dept, years in w["years_by_department"].items()
    )
    ext = w["extended_warranty"]
    return f"""# Warranty

Every product we sell is covered against manufacturing defects from the date of purchase for
the period below. During that time we repair or replace the item, or refund it if neither is
possible.

| Department | Warranty |
|---|---|
{rows}

## Extended warranty
For {" and ".join(ext["departments"])} you can add **{ext["extra_years"]} extra years** of cover at
checkout for {ext["price_pct_of_item"]}% of the item price.

## Making a claim
Bring the item to any store or start a claim online. You need {" and ".join(w["claim_requires"])}.
Normal wear and tear, accidental damage and misuse are not covered.
"""


def _price_match(f: dict[str, Any]) -> str:
    p = f["price_match"]
    excludes = "\n".join(f"- {item}" for item in p["excludes"])
    return f"""# Price match promise

Found it cheaper? We match the current advertised price of an identical item (same brand,
model, color and size) at **{" or ".join(p["competitors"])}**, online or in store, at the time
of purchase. If our own price drops within **{p["window_days"]} days** of your purchase, we
refund the difference. Up to {p["max_units_per_item"]} units per item.

## Not eligible
{excludes}
"""


def _loyalty(f: dict[str, Any]) -> str:
    loyalty = f["loyalty"]
    tiers = "\n".join(
        f"| {name} | {_usd(t['annual_spend_usd'])} | {'; '.join(t['perks'])} |"
        for name, t in loyalty["tiers"].items()
    )
    points = "point" if loyalty["points_per_usd"] == 1 else "points"
    return f"""# {loyalty["program_name"]}

Joining is free. You earn **{loyalty["points_per_usd"]} {points}
per dollar** spent online and in store, and every **{loyalty["points_per_reward"]} points**
turn into a {_usd(loyalty["reward_value_usd"])} reward. Points expire after
{loyalty["points_expire_months"]} months without any purchase. On your birthday you receive
{loyalty["birthday_bonus_points"]} bonus points.

| Tier | Annual spend | Perks |
|---|---|---|
{tiers}
"""


def _faq(f: dict[str, Any]) -> str:
    r, s, p = f["returns"], f["shipping"], f["price_match"]
    lo, hi = s["standard_business_days"]
    qa = [
        (
            "How long do I have to return something?",
            f"{r['window_days']} days for most items, {r['electronics_window_days']} days for "
            "electronics.",
        ),
        (
            "Is shipping free?",
            f"Standard shipping is free on orders of {_usd(s['free_shipping_threshold_usd'])} or "
            f"more; below that it costs {_usd(s['standard_fee_usd'])}.",
        ),
        (
            "When will my order arrive?",
            f"Standard delivery takes {lo}-{hi} business days, express 1-2 business days.",
        ),
        (
            "Can I pick up my order in a store?",
            f"Yes, click & collect orders are ready in {s['click_and_collect_ready_hours']} hours.",
        ),
        (
            "Do you price match?",
            f"Yes, we match {' and '.join(p['competitors'])} on identical items, and refund the "
            f"difference if our price drops within {p['window_days']} days.",
        ),
        (
            "How long is the warranty on electronics?",
            f"{f['warranty']['years_by_department']['Electronics']} year(s) against defects, "
            "extendable at checkout.",
        ),
        (
            "When do I get my refund?",
            f"Within {r['refund_business_days']} business days after we receive the item.",
        ),
        (
            "How do I reach customer service?",
            f"By phone {f['support']['phone_hours']}, or by chat {f['support']['chat']}.",
        ),
        (
            "Which size should I order?",
            "Check the apparel and footwear size guides; between sizes, "
            f"{f['sizing']['between_sizes_advice']}.",
        ),
    ]
    body = "\n\n".join(f"### {q}\n{a}" for q, a in qa)
    return f"# Frequently asked questions\n\n{body}\n"


_DOCS = (
    ("policy-returns", "returns", "Returns and refunds", _returns),
    ("policy-shipping", "shipping", "Shipping and delivery", _shipping),
    ("guide-sizing-apparel", "sizing", "Apparel size guide", _sizing_apparel),
    ("guide-sizing-footwear", "sizing", "Footwear size guide", _sizing_footwear),
    ("policy-warranty", "warranty", "Warranty", _warranty),
    ("policy-price-match", "price_match", "Price match promise", _price_match),
    ("program-loyalty", "loyalty", "Loyalty program", _loyalty),
    ("faq-general", "faq", "Frequently asked questions", _faq),
)


def policy_documents(facts: dict[str, Any]) -> pl.DataFrame:
    rows = [
        {
            "doc_id": doc_id,
            "doc_type": doc_type,
            "title": title,
            "body": render(facts),
            "effective_date": date.fromisoformat(facts["effective_dates"][doc_id]),
            "version": facts["versions"][doc_id],
        }
        for doc_id, doc_type, title, render in _DOCS
    ]
    return POLICY_DOCUMENTS.conform(pl.DataFrame(rows))
