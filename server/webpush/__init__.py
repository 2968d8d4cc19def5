"""Web Push (RFC 8030/8291/8292): offers reach a courier whose app is in the background or closed."""
