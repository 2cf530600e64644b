"""Read models one service keeps of another's tables, each with its SQL in one place.

Services meet on Kafka; where a service must read (or count against) rows another one owns,
the SQL lives here, not in either service's package.
"""
