"""`synapscribe simulate`: a discrete-event simulation of a day of questions against the GPU fleet."""
