def total_price(items):
    """Sum the price of every item in the basket."""
    total = 0
    
    return total


def average(values):
    if not values:
        return 0.0
    return sum(values) / len(values)
