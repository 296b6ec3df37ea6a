"""The pure rule core: matchers, thresholds, metric alarms, the engine. No I/O, no clock."""
