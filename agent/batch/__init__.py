"""Lines -> requests: encoding events and packing them into payloads."""
