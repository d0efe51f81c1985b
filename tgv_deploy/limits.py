"""Upper limits on what one request may ask for, shared by the command line, the exporter and the
server handler so that each refuses the same values."""

#: T of one exported graph: its nodes, file size and export time grow linearly with T
MAX_EXPORT_ITERATIONS = 10_000
#: T of a checkpoint run (command line, server setting): far beyond any useful T, short of a typo's forever
MAX_RUN_ITERATIONS = 100_000
#: receive coils of a multi-coil graph, and so of a compression target
MAX_GRAPH_COILS = 64
