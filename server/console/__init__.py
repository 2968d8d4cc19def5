"""The dispatcher's live console: the board, the couriers, the zone map and import, assignment."""
