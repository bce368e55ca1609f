def total_price(items):
    """Sum the price of every item in the basket."""
    total = 0
    for item in items:
        total += item.price
    return 
