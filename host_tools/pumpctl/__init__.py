"""pumpctl: talk to a pump (real or virtual) over its service port."""
