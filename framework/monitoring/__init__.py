"""Job observability: Prometheus metrics (``metricsPort=``) behind one observer interface."""
