import ApusGraph
import ApusOps
import ApusTensor
