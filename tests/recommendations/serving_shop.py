"""A small hand-made shop with a published model, shared by the serving tests.

Categories: Outdoor > Tents, Kitchen > Fuel. Alice has history (bought the Trail Tent); her personal
list is lamp, stove, mug, boots, socks. The item lists and global lists are chosen so each placement's
right answer can be read off below.
"""

from dataclasses import dataclass, field

from catalog.models import Category, Product
from events.models import Customer
from recommendations.engine.precomputed import BoughtTogether, Candidate, Precomputed
from recommendations.models import RecommenderVersion
from tests.factories.catalog import CategoryFactory, ProductFactory
from tests.factories.events import CustomerFactory, OrderFactory, OrderLineFactory
from tests.factories.recommendations import published_version

PRODUCTS = {
    # sku: (title, category key)
    "TENT-1": ("Trail Tent", "tents"),
    "TENT-2": ("Summit Tent", "tents"),
    "PAD-1": ("Sleeping Pad", "outdoor"),
    "LAMP-1": ("Camp Lamp", "outdoor"),
    "BOOT-1": ("Hiking Boots", "outdoor"),
    "SOCK-1": ("Wool Socks", "outdoor"),
    "STOVE-1": ("Camp Stove", "kitchen"),
    "POT-1": ("Cook Pot", "kitchen"),
    "MUG-1": ("Enamel Mug", "kitchen"),
    "FUEL-1": ("Stove Fuel", "fuel"),
}


@dataclass
class Shop:
    merchant: object
    categories: dict[str, Category]
    products: dict[str, Product]
    alice: Customer
    version: RecommenderVersion | None = None
    precomputed: Precomputed | None = None
    extra: dict = field(default_factory=dict)

    def id(self, sku: str) -> int:
        return self.products[sku].pk

    def sku(self, product_id: int) -> str:
        return next(sku for sku, product in self.products.items() if product.pk == product_id)

    def skus(self, items) -> list[str]:
        return [item.sku for item in items]


def build_shop(merchant, *, publish: bool = True) -> Shop:
    outdoor = CategoryFactory(merchant=merchant, name="Outdoor", path="Outdoor")
    kitchen = CategoryFactory(merchant=merchant, name="Kitchen", path="Kitchen")
    categories = {
        "outdoor": outdoor,
        "tents": CategoryFactory(merchant=merchant, name="Tents", path="Outdoor > Tents", parent=outdoor),
        "kitchen": kitchen,
        "fuel": CategoryFactory(merchant=merchant, name="Fuel", path="Kitchen > Fuel", parent=kitchen),
    }
    products = {
        sku: ProductFactory(merchant=merchant, sku=sku, title=title, category=categories[category])
        for sku, (title, category) in PRODUCTS.items()
    }
    alice = CustomerFactory(merchant=merchant, external_id="alice")
    order = OrderFactory(merchant=merchant, customer=alice)
    OrderLineFactory(order=order, product=products["TENT-1"])
    shop = Shop(merchant=merchant, categories=categories, products=products, alice=alice)
    shop.precomputed = shop_precomputed(shop)
    if publish:
        shop.version = published_version(merchant=merchant, precomputed=shop.precomputed)
    return shop


def shop_precomputed(shop: Shop) -> Precomputed:
    p = shop.id
    return Precomputed(
        for_customer={
            shop.alice.pk: [
                Candidate(p("LAMP-1"), 0.9, "purchased", p("TENT-1")),
                Candidate(p("STOVE-1"), 0.8, "for_you", None),
                Candidate(p("MUG-1"), 0.7, "for_you", None),
                Candidate(p("BOOT-1"), 0.6, "for_you", None),
                Candidate(p("SOCK-1"), 0.5, "for_you", None),
            ]
        },
        viewed_together={
            p("TENT-1"): [(p("TENT-2"), 0.9), (p("PAD-1"), 0.5)],
            p("STOVE-1"): [(p("POT-1"), 0.8), (p("FUEL-1"), 0.6)],
            p("BOOT-1"): [(p("SOCK-1"), 0.7)],
        },
        similar_content={p("TENT-1"): [(p("TENT-2"), 0.8)], p("MUG-1"): [(p("POT-1"), 0.7)]},
        purchased_together={p("STOVE-1"): [(p("FUEL-1"), 0.5)]},
        bought_together={
            p("STOVE-1"): [
                BoughtTogether(p("FUEL-1"), support=0.1, confidence=0.6, lift=3.0),
                BoughtTogether(p("POT-1"), support=0.05, confidence=0.4, lift=2.0),
            ],
            p("TENT-1"): [BoughtTogether(p("PAD-1"), support=0.1, confidence=0.5, lift=2.5)],
        },
        popular=[
            (p("SOCK-1"), 100.0),
            (p("MUG-1"), 80.0),
            (p("BOOT-1"), 60.0),
            (p("PAD-1"), 40.0),
            (p("LAMP-1"), 20.0),
        ],
        trending=[(p("POT-1"), 5.0), (p("TENT-2"), 3.0)],
        popular_by_category={shop.categories["tents"].pk: [(p("TENT-2"), 10.0), (p("TENT-1"), 8.0)]},
        trending_by_category={shop.categories["tents"].pk: [(p("TENT-1"), 2.0)]},
        new_arrivals=[p("SOCK-1")],
        product_category={product.pk: product.category_id for product in shop.products.values()},
    )
