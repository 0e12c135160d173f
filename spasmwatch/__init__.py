"""spasmwatch: local-first monitor for infant sleep-onset movements.

The distribution maps the repository's top-level folders into this package:
``spasmwatch.firmware`` (firmware/), ``spasmwatch.host`` (host/) and
``spasmwatch.simulator`` (simulator/). Not a medical device.
"""

__version__ = "0.1.0"
