"""NuGraph3 (Fermilab's graph network that labels every hit of a liquid-argon TPC event).

- :mod:`producers.nugraph3.preprocess`: one event's hit and space-point tables to the network's graph
  (numpy + scipy, no torch), batching several events' graphs into one and splitting outputs back.
- :mod:`producers.nugraph3.network`: the network in torch, loaded from the NuGraph team's checkpoint.

Both import cheaply: scipy and torch are imported only when a graph is built or a network loaded.
"""
