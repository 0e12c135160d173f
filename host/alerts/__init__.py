"""Alert delivery: alarm state, delivery hub, channels, web page, watchdog."""
