"""Delivery channels: local audio, desktop notification, apprise (push/SMS/call), MQTT for
Home Assistant. Each is optional and independent; ``delivery.AlertHub`` fans out to them."""
