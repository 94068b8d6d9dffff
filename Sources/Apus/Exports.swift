// `import Apus` gives users the tensor type and the graph types without further imports.
@_exported import ApusGraph
@_exported import ApusTensor
