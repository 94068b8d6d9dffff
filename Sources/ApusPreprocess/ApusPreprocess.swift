import ApusTensor
