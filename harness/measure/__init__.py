"""Measuring one implementation: calling it (execute), checking it against the oracle (check), timing it on the
GPU without the host (timing, hold, inputs, cupti, clocks) and judging the figure against the hardware's
ceilings (ceilings, plausibility)."""
