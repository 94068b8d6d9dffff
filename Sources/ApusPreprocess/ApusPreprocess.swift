@_exported import ApusTensor
