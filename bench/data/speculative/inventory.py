"""A small stock-keeping module: items, a warehouse and a few reports over them."""
from dataclasses import dataclass, field


@dataclass
class Item:
    sku: str
    name: str
    price: float
    quantity: int = 0


@dataclass
class Warehouse:
    name: str
    items: dict = field(default_factory=dict)


def add_item(warehouse, sku, name, price, quantity):
    if sku in warehouse.items:
        raise ValueError("duplicate sku: " + sku)
    item = Item(sku, name, price, quantity)
    warehouse.items[sku] = item
    return item


def restock(warehouse, sku, amount):
    item = warehouse.items[sku]
    if amount <= 0:
        raise ValueError("amount must be positive")
    item.quantity = item.quantity + amount
    return item.quantity


def sell(warehouse, sku, amount):
    item = warehouse.items[sku]
    if amount > item.quantity:
        raise ValueError("not enough stock for " + sku)
    item.quantity = item.quantity - amount
    return amount * item.price


def total_value(warehouse):
    total = 0.0
    for item in warehouse.items.values():
        total = total + item.price * item.quantity
    return total


def low_stock(warehouse, threshold):
    result = []
    for sku, item in warehouse.items.items():
        if item.quantity < threshold:
            result.append(sku)
    result.sort()
    return result


def price_list(warehouse):
    lines = []
    for item in sorted(warehouse.items.values(), key=lambda i: i.name):
        lines.append(item.name + ": " + str(round(item.price, 2)))
    return "\n".join(lines)
