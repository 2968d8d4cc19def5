"""What every partner API call goes through: rate limits per API key and Idempotency-Key on POSTs."""
