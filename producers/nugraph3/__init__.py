"""NuGraph3 (Fermilab's graph network that labels every hit of a liquid-argon TPC event).

- :mod:`producers.nugraph3.preprocess`: one event's hit and space-point tables to the network's graph
  (numpy + scipy, no torch), batching several events' graphs into one and splitting outputs back.
- :mod:`producers.nugraph3.network`: the network in torch, loaded from the NuGraph team's checkpoint.
- the twins (TagInfo split): :mod:`~producers.nugraph3.inputs_producer` (the event's 10 tables as a product),
  :mod:`~producers.nugraph3.direct_producer` (graph + network in the job), :mod:`~producers.nugraph3.sonic_producer`
  (tables to a Triton server), :mod:`~producers.nugraph3.common` (products), :mod:`~producers.nugraph3.cff`
  (``add()``, swapped by the ``nuGraph3SonicTriton`` modifier); the served model:
  :mod:`~producers.nugraph3.triton_model` (Python backend) and :mod:`~producers.nugraph3.model_repo` (its config).

Both import cheaply: scipy and torch are imported only when a graph is built or a network loaded.
"""
