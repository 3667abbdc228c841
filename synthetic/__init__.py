"""Written numbers made from MNIST digits and pen strokes: the benchmark sets that
`evaluate` reports, the pieces `train` learns from, and what the tests and benchmarks draw."""
