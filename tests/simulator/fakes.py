"""A storefront API stand-in that serves a world's catalog and records what the simulator sends."""

from revopt.simulator.driver import EVENTS_PATH, PRODUCTS_PATH
from revopt.simulator.world import World


class FakeStorefront:
    def __init__(self, world: World, *, reject_event: str | None = None) -> None:
        p = world.products
        self.products = sorted(
            (
                {
                    "id": j + 1,
                    "sku": p["sku"][j],
                    "external_id": "",
                    "title": p["title"][j],
                    "brand": p["brand"][j],
                    "price": f"{world.list_price[j]:.2f}",
                    "currency": "USD",
                    "category": {"id": int(p["category"][j]) + 1, "path": world.categories[int(p["category"][j])]},
                    "inventory": int(p["inventory"][j]),
                    "in_stock": bool(p["inventory"][j] > 0),
                }
                for j in range(len(p["sku"]))
            ),
            key=lambda product: product["sku"],
        )
        self.reject_event = reject_event
        self.batches: list[list[dict]] = []
        self.catalog_requests = 0

    def get(self, path: str, params: dict | None = None) -> dict:
        assert path == PRODUCTS_PATH
        self.catalog_requests += 1
        offset, limit = int(params["offset"]), int(params["limit"])
        return {"count": len(self.products), "results": self.products[offset : offset + limit]}

    def post(self, path: str, payload: dict) -> dict:
        assert path == EVENTS_PATH
        batch = payload["batch"]
        self.batches.append(batch)
        results = []
        for index, event in enumerate(batch):
            rejected = self.reject_event is not None and event.get("event") == self.reject_event
            results.append(
                {
                    "index": index,
                    "messageId": event["messageId"],
                    "status": "rejected" if rejected else "accepted",
                    "errors": [{"field": "event", "reason": "rejected by the fake"}] if rejected else [],
                }
            )
        rejected = sum(result["status"] == "rejected" for result in results)
        return {"accepted": len(batch) - rejected, "duplicate": 0, "rejected": rejected, "results": results}

    @property
    def events(self) -> list[dict]:
        return [event for batch in self.batches for event in batch]
