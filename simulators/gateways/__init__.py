"""Local servers that behave like the payment gateways' sandboxes (requests, responses,
redirects, callbacks and signatures), for the tests, the demo and the benchmarks."""
